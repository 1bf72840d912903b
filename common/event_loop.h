#pragma once

#include <cstdint>
#include <deque>
#include <queue>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"

namespace musafarm {

// Runs posted closures one at a time, in order, on one thread. Farm state (the
// scheduler, the store, agent sessions) lives on such a loop and so needs no
// locks. Post() and PostAfter() are thread-safe; closures must not block for long.
//
// Either Start() a thread of its own, or drive it from a test with
// RunUntilIdle(), which also fires timers that are due by the injected clock.
class EventLoop {
 public:
  explicit EventLoop(const Clock* clock = RealClock::Get());
  ~EventLoop();  // Stops and joins; closures still queued are dropped.

  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  void Post(absl::AnyInvocable<void() &&> fn);
  void PostAfter(absl::Duration delay, absl::AnyInvocable<void() &&> fn);

  void Start();
  // Finishes the closure running now, then exits the thread. Idempotent.
  void Stop();

  // Runs everything that is ready, including due timers, until nothing is.
  // Returns the number of closures run. Only when not Start()ed.
  int RunUntilIdle();

  // Posts `fn` and waits until it has run. Must not be called on the loop thread.
  void RunSync(absl::AnyInvocable<void() &&> fn);

  bool IsLoopThread() const { return std::this_thread::get_id() == thread_id_; }

 private:
  struct Timer {
    absl::Time when;
    uint64_t seq;
    mutable absl::AnyInvocable<void() &&> fn;
    bool operator>(const Timer& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };
  void Loop();
  // Moves due timers into ready_. Requires mu_.
  void PromoteDueTimers(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock* clock_;
  absl::Mutex mu_;
  std::deque<absl::AnyInvocable<void() &&>> ready_ ABSL_GUARDED_BY(mu_);
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool timer_added_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
  std::thread::id thread_id_;
};

}  // namespace musafarm
