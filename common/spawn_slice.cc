#include "common/spawn_slice.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace musafarm {
namespace {

// The kernel's struct sched_attr (linux/sched/types.h, which glibc 2.36's
// headers do not declare and which clashes with <sched.h> where they do).
struct KernelSchedAttr {
  uint32_t size;
  uint32_t sched_policy;
  uint64_t sched_flags;
  int32_t sched_nice;
  uint32_t sched_priority;
  uint64_t sched_runtime;
  uint64_t sched_deadline;
  uint64_t sched_period;
  uint32_t sched_util_min;
  uint32_t sched_util_max;
};

constexpr uint64_t kResetOnFork = 0x01;  // SCHED_FLAG_RESET_ON_FORK
constexpr uint64_t kShortSliceNs = 100 * 1000;  // the kernel's least

// Whether this thread may take the short slice: unknown until its first
// spawn, then kept (a thread's policy and nice value do not change under us
// in the agent).
enum class Eligible { kUnknown, kYes, kNo };
thread_local Eligible eligible = Eligible::kUnknown;

bool SetAttr(const KernelSchedAttr& attr) {
  return ::syscall(SYS_sched_setattr, 0, &attr, 0) == 0;
}

}  // namespace

SpawnSlice::SpawnSlice() {
  if (eligible == Eligible::kNo) return;
  const int saved_errno = errno;
  KernelSchedAttr attr;
  std::memset(&attr, 0, sizeof attr);
  if (::syscall(SYS_sched_getattr, 0, &attr, sizeof attr, 0) != 0 ||
      attr.sched_policy != SCHED_OTHER || attr.sched_nice < 0) {
    eligible = Eligible::kNo;
    errno = saved_errno;
    return;
  }
  nice_ = attr.sched_nice;
  attr.size = sizeof attr;
  attr.sched_flags = kResetOnFork;
  attr.sched_runtime = kShortSliceNs;
  active_ = SetAttr(attr);
  // A kernel before custom slices (6.12) takes the call and ignores the
  // runtime; one that refuses it is not asked again.
  eligible = active_ ? Eligible::kYes : Eligible::kNo;
  errno = saved_errno;
}

SpawnSlice::~SpawnSlice() { Restore(); }

void SpawnSlice::Restore() {
  if (!active_) return;
  active_ = false;
  const int saved_errno = errno;
  KernelSchedAttr attr;
  std::memset(&attr, 0, sizeof attr);
  attr.size = sizeof attr;
  attr.sched_policy = SCHED_OTHER;
  attr.sched_flags = kResetOnFork;
  attr.sched_nice = nice_;
  attr.sched_runtime = 0;  // the default
  (void)SetAttr(attr);
  errno = saved_errno;
}

}  // namespace musafarm
