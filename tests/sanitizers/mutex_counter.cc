// Two threads each add to a counter 100000 times. Built only in the TSan build
// (build type Tsan, scripts/tsan-test.sh), twice:
//  - tsan_mutex_counter: under an absl::Mutex, with Abseil's synchronization
//    compiled from source with -fsanitize=thread. TSan must stay quiet; it shows
//    that the instrumented absl::Mutex orders memory for TSan.
//  - tsan_mutex_counter_debian_absl: the same against Debian's uninstrumented
//    libabsl_synchronization: TSan reports a (false) race, which is why the
//    TSan build brings its own.
//  - with the argument "race": no lock at all, a real race TSan must report
//    (tsan_canary: the build is live).
#include <cstdio>
#include <cstring>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace {

absl::Mutex mu;
long counter ABSL_GUARDED_BY(mu) = 0;
long unguarded = 0;

void Add(bool lock) {
  for (int i = 0; i < 100000; ++i) {
    if (lock) {
      absl::MutexLock l(&mu);
      ++counter;
    } else {
      ++unguarded;
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  const bool lock = !(argc > 1 && std::strcmp(argv[1], "race") == 0);
  std::thread a(Add, lock);
  std::thread b(Add, lock);
  a.join();
  b.join();
  absl::MutexLock l(&mu);
  std::printf("counter=%ld unguarded=%ld\n", counter, unguarded);
  return 0;
}
