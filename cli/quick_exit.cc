#include "cli/quick_exit.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MF_QUICK_EXIT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MF_QUICK_EXIT_SANITIZED 1
#endif
#endif

namespace musafarm::cli {

#if defined(MF_QUICK_EXIT_SANITIZED)
const bool kExitHandsOffTeardown = false;
#else
const bool kExitHandsOffTeardown = true;
#endif

void EnterIdleSchedulingClass() {
  struct sched_param idle = {};
  syscall(SYS_sched_setscheduler, 0, SCHED_IDLE, &idle);
}

namespace {

// The child. It shares the parent's memory, thread pointer included, so it
// makes raw system calls only: no glibc state, no errno reads that matter.
int HoldMemoryUntilTheParentExits(void* arg) {
  const auto fd = static_cast<unsigned>(reinterpret_cast<intptr_t>(arg));
  // Every descriptor but the pipe's read end: the parent's stdout and stderr
  // (a CI log's pipe, a $(...)) must reach EOF when the parent exits. Closed
  // at normal priority: that EOF must not wait for an idle core.
  if (fd > 0) syscall(SYS_close_range, 0U, fd - 1, 0U);
  syscall(SYS_close_range, fd + 1, ~0U, 0U);
  EnterIdleSchedulingClass();
  // EOF once the parent's exit closed its write end; a signal may cut the
  // read short, and a few retries cover that.
  char c = 0;
  for (int tries = 0; tries < 100 && syscall(SYS_read, fd, &c, 1) < 0; ++tries) {
  }
  syscall(SYS_exit, 0);
  return 0;
}

}  // namespace

void ExitLeavingTeardown(int code) {
  int fds[2];
  if (kExitHandsOffTeardown && pipe2(fds, O_CLOEXEC) == 0) {
    // The child's stack: it runs a few system calls, nothing deeper.
    alignas(64) static char stack[16 * 1024];
    // Without CLONE_FILES the child has its own copy of the descriptor table
    // (it closes that copy's write end); SIGCHLD so that whoever inherits it
    // reaps it as any other child. A failure leaves the plain exit below.
    (void)clone(&HoldMemoryUntilTheParentExits, stack + sizeof(stack), CLONE_VM | SIGCHLD,
                reinterpret_cast<void*>(static_cast<intptr_t>(fds[0])));
  }
  _exit(code);
}

}  // namespace musafarm::cli
