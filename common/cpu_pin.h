#pragma once

#include <sched.h>
#include <sys/types.h>

namespace musafarm {

// Holds the calling thread on the CPU it is running on, for a spawn (issue
// 19). A vfork'd child that may run on any CPU is put on an idle one, and is
// moved there again by the kernel at its execve (sched_exec); the spawner,
// asleep until that execve, is then woken from the other CPU. On this VM each
// of those wake-ups of an idle CPU costs about as much as the spawn itself (a
// loop spawning /usr/bin/true: p50 566 us as it is, 246 us pinned). A child
// started while the pin holds inherits it and stays on this CPU through its
// execve; Release gives it (and whatever it started meanwhile) the caller's
// original mask back, so that the task's processes may use every CPU the
// agent may.
// Not thread-safe; one per spawn, on the spawning thread.
class CallerCpuPin {
 public:
  // Pins the calling thread, unless it may run on one CPU only anyway or the
  // mask cannot be read or set (then Release does nothing).
  CallerCpuPin();
  ~CallerCpuPin();
  CallerCpuPin(const CallerCpuPin&) = delete;
  CallerCpuPin& operator=(const CallerCpuPin&) = delete;

  // Gives `child` (a process started under the pin; -1: none) and every
  // thread and process it started meanwhile the original mask, then the
  // calling thread. Idempotent.
  void Release(pid_t child);

 private:
  cpu_set_t original_;
  bool pinned_ = false;
};

// Sets `mask` on every thread of process `pid` and, recursively, of every
// process those threads started: each thread's mask is set before its
// children are listed, so that a process it starts later inherits `mask`
// (/proc/PID/task/TID/children, Linux 3.5 with CONFIG_PROC_CHILDREN; without
// it only the threads are reached). Best effort: a process that has exited
// meanwhile is skipped.
void SetProcessTreeAffinity(pid_t pid, const cpu_set_t& mask);

}  // namespace musafarm
