// Proof that clang's thread-safety analysis is live with the project's flags:
// ctest compiles this file twice with clang++-14 -fsyntax-only (tests/tsa/
// CMakeLists.txt). Without MF_TSA_HOLD_LOCK it reads a guarded field without
// its lock and must not compile; with it the same read holds the lock and must
// compile, so the failing run cannot pass for an unrelated reason (a missing
// include, a bad flag).
#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace {

class Counter {
 public:
  int Read() {
#ifdef MF_TSA_HOLD_LOCK
    absl::MutexLock lock(&mu_);
#endif
    return value_;
  }

 private:
  absl::Mutex mu_;
  int value_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

int main() {
  Counter c;
  return c.Read();
}
