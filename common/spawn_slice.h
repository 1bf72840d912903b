#pragma once

#include <cstdint>

namespace musafarm {

// Gives the calling thread the shortest time slice the scheduler takes (0.1
// ms, Linux 6.12's custom slices) from before a spawn's clone until it
// returns (Restore), so that the
// child's execve, which wakes the spawner on the CPU the child runs on
// (CallerCpuPin), hands that CPU back at once (issue 19). With the default
// slice the woken spawner did not preempt the child in about half the spawns
// of a no-op task and waited for it to end (perf sched: 0.5-0.8 ms of
// scheduling delay against 4 us): EEVDF lets a running task keep the CPU for
// its slice unless the woken one asks for a shorter one. The thread is marked
// SCHED_RESET_ON_FORK (once, for good: an unprivileged process cannot clear
// it), so that the child starts with the default slice and never inherits the
// short one. Only for a thread of the normal policy with a nice value of 0 or
// more, for which that mark changes nothing else a child inherits (it would
// reset a real-time policy or a negative nice value); otherwise, and on
// kernels without custom slices, nothing happens. Restore gives the thread the
// default slice: the kernel shows a custom slice of the thread's own (the
// agent sets none) as it shows the default, so it is not kept.
// Spawn asks for it (ExecRequest::short_slice; MUSAFARM_SPAWN=clone-default-slice
// leaves it out, subprocess.h). The cost: the child, preempted right after its
// execve, waits behind the spawner's bookkeeping and whatever else runs there;
// under heavy load a short task then ended later (BENCHMARKS.md, "the
// spawner's slice").
// Not thread-safe; one per spawn, on the spawning thread.
class SpawnSlice {
 public:
  SpawnSlice();
  ~SpawnSlice();
  SpawnSlice(const SpawnSlice&) = delete;
  SpawnSlice& operator=(const SpawnSlice&) = delete;

  // Gives the thread its slice back (at once after the clone returns: the
  // spawner, woken, must not then give the CPU back to the child before it
  // is done with the spawn). Idempotent.
  void Restore();

  // Whether the short slice is in force (for tests).
  bool active() const { return active_; }

 private:
  bool active_ = false;
  int32_t nice_ = 0;
};

}  // namespace musafarm
