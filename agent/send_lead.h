#pragma once

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace musafarm::agent {

// How far one attempt's output runs ahead of what the agent has sent of it:
// bytes an executor has read from the task's pipe and the loop has not
// spooled yet, plus spooled bytes not yet sent (the spool's total - sent).
//
// While the attempt is being sent (connected, registered, confirmed), the
// executor reads no more of its pipe once the lead is over kMax (it asks
// WaitForRoom after each read), so a task that prints faster than the
// coordinator stores and forwards blocks on its write, as on a slow terminal,
// instead of a backlog growing in the spool that every later line waits
// behind on its way to a watcher. While it is not being sent (no coordinator,
// or the coordinator has not yet said what it stored) nothing is bounded
// here: the spool absorbs the output as before (SpoolBudget bounds that), so
// a disconnect never stalls a task. Thread-safe: the executor's thread adds
// reads and waits, the agent loop does the rest.
//
// kMax is the agent's, not each attempt's: the agent gives each attempt its
// share of it (Update's `max`), so that what is queued ahead of a watcher does
// not grow with the number of tasks printing at once.
class SendLead {
 public:
  // Overshoot is at most one read: what Room() said, or kMinOutputRead.
  static constexpr uint64_t kMax = 1 << 20;

  // Executor thread: `bytes` were read and are on their way to the loop.
  void Read(uint64_t bytes);
  // Loop: `bytes` of Read reached the loop and were spooled (or dropped).
  void Spooled(uint64_t bytes);
  // Loop: the spool holds `unsent` bytes not yet sent; `sending` says whether
  // the attempt's log is being sent now; `max` is the attempt's bound.
  void Update(uint64_t unsent, bool sending, uint64_t max = kMax);
  // Waits up to `timeout` until the lead is under its bound or the attempt is
  // not being sent; true when so.
  bool WaitForRoom(absl::Duration timeout);
  // Bytes the executor may read before the lead reaches its bound; kMax
  // while the attempt is not being sent (nothing is bounded then).
  uint64_t Room();

 private:
  absl::Mutex mu_;
  uint64_t reading_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t unsent_ ABSL_GUARDED_BY(mu_) = 0;
  bool sending_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t max_ ABSL_GUARDED_BY(mu_) = kMax;
};

}  // namespace musafarm::agent
