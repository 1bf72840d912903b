#include "common/clone_spawn.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <optional>

#include "common/cpu_pin.h"
#include "common/spawn_slice.h"

namespace musafarm {
namespace {

// The child's stack: a few frames of the functions below and the syscalls'.
constexpr size_t kChildStackBytes = 64 << 10;
// The kernel's signal numbers are 1..64, its sigset 8 bytes.
constexpr int kLastSignal = 64;
constexpr size_t kKernelSigsetBytes = 8;

// Shared by caller and child (CLONE_VM): the child writes `error` before it
// exits; the caller reads it once the clone has returned (CLONE_VFORK: after
// the child's execve or exit).
struct ChildArgs {
  const ExecRequest* req;
  int error;
};

// Everything below runs in the child, in the caller's memory and with the
// caller's thread-local storage (errno included), while the caller is
// suspended: only async-signal-safe calls, nothing allocated, no locks.

// `fd` as `target` (as dup2), with close-on-exec cleared also when they are
// the same descriptor (dup2 would leave the flag set).
int MoveFd(int fd, int target) {
  if (fd != target) return ::dup2(fd, target) < 0 ? errno : 0;
  const int flags = ::fcntl(fd, F_GETFD);
  if (flags < 0 || ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0) return errno;
  return 0;
}

int PrepareAndExec(const ExecRequest& req) {
  // Every disposition to the default: a handler of the caller's must not run
  // here, in its memory, and an ignored signal (the agent ignores SIGPIPE)
  // must not stay ignored in the task. All bytes zero is SIG_DFL with no
  // flags and an empty mask in the kernel's struct on every architecture.
  // The raw call: glibc's sigaction refuses its own two signals (32, 33).
  uint64_t dfl[4] = {0, 0, 0, 0};
  for (int sig = 1; sig <= kLastSignal; ++sig) {
    if (sig == SIGKILL || sig == SIGSTOP) continue;
    (void)::syscall(SYS_rt_sigaction, sig, dfl, nullptr, kKernelSigsetBytes);
  }
  if (::setpgid(0, 0) != 0) return errno;  // its own group: a kill reaches every descendant
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) return errno;
  if (const int rc = MoveFd(null_fd, 0); rc != 0) return rc;
  if (const int rc = MoveFd(req.out_fd, 1); rc != 0) return rc;
  if (const int rc = MoveFd(req.out_fd, 2); rc != 0) return rc;
  // The originals are close-on-exec (the caller's pipe; ours above), unless
  // one of them was already 0, 1 or 2.
  if (req.dir != nullptr && ::chdir(req.dir) != 0) return errno;
  // Nothing blocked: the caller blocked everything around the clone.
  const uint64_t none = 0;
  (void)::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, nullptr, kKernelSigsetBytes);
  ::execve(req.path, req.argv, req.envp);
  return errno;
}

int ChildMain(void* p) {
  auto* args = static_cast<ChildArgs*>(p);
  args->error = PrepareAndExec(*args->req);
  if (args->error == 0) args->error = ECHILD;  // not reached: execve returns only on failure
  ::_exit(127);
}

}  // namespace

int CloneSpawn(const ExecRequest& req, pid_t* pid) {
  // One stack per spawning thread, kept: the child runs on it while this
  // thread waits, so two spawns on one thread never overlap.
  thread_local std::unique_ptr<char[]> stack;
  if (stack == nullptr) stack.reset(new char[kChildStackBytes]);
  // Stacks grow down on the architectures we build for (x86-64, AArch64).
  const uintptr_t top =
      (reinterpret_cast<uintptr_t>(stack.get()) + kChildStackBytes) & ~static_cast<uintptr_t>(63);
  ChildArgs args{&req, 0};
  const int saved_errno = errno;
  CallerCpuPin pin;
  std::optional<SpawnSlice> slice;
  if (req.short_slice) slice.emplace();
  // Every signal blocked (the raw call: glibc's would keep its own two
  // unblocked) from before the clone until after it returns: the child must
  // not run a handler of ours in our memory before it has reset them.
  const uint64_t all = ~uint64_t{0};
  uint64_t old = 0;
  (void)::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, kKernelSigsetBytes);
  const pid_t child = ::clone(ChildMain, reinterpret_cast<void*>(top),
                              CLONE_VM | CLONE_VFORK | SIGCHLD, &args);
  const int clone_errno = errno;
  // The short slice only for the wake-up: with it the spawner, woken, would
  // hand the CPU to the child again at its slice's end, before the rest of
  // the spawn (Release below) is done.
  if (slice) slice->Restore();
  (void)::syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, nullptr, kKernelSigsetBytes);
  int rc = child < 0 ? clone_errno : args.error;
  if (child > 0 && rc != 0) {
    // It exited without exec'ing: reap it here, as posix_spawn does.
    while (::waitpid(child, nullptr, 0) < 0 && errno == EINTR) {
    }
  }
  pin.Release(rc == 0 ? child : -1);
  if (rc == 0) *pid = child;
  errno = saved_errno;
  return rc;
}

}  // namespace musafarm
