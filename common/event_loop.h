#pragma once

#include <atomic>
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

  // Group commit: consecutive closures posted with PostGrouped run as one
  // group, between the hooks' begin and end (the coordinator commits all of a
  // group's state changes in one transaction at its end). A group ends before
  // any other closure or timer runs, before the loop waits for work, after
  // kMaxGroup closures, and at Stop, so whatever a grouped closure defers is
  // done before anything else can look. Without hooks PostGrouped is Post.
  static constexpr int kMaxGroup = 1024;
  void PostGrouped(absl::AnyInvocable<void() &&> fn);
  // PostGrouped that does not wake a waiting loop: the closure keeps its
  // place in order, and runs once the loop wakes for anything else, or at
  // most kUnhurriedDelay after it was posted. For the steady trickle of
  // messages whose only effect can wait a moment (agent heartbeats: one each
  // per agent and interval, ~3,300/s from 10,000 agents), so that each does
  // not cost a wake-up and a sleep of the loop's thread.
  static constexpr absl::Duration kUnhurriedDelay = absl::Milliseconds(100);
  void PostGroupedUnhurried(absl::AnyInvocable<void() &&> fn);
  // Runs `fn` at once on the calling thread, as a group of its own (hooks
  // included), when the started loop is idle: waiting for work, nothing
  // queued, not stopping. Otherwise it is PostGrouped. While `fn` runs the
  // loop's thread runs nothing (what is posted meanwhile waits for it), so
  // closures still run one at a time and in order. For a message whose
  // latency is the point (issue 19: the agent spawns an assignment on the
  // thread that read it, without waking the loop's thread, which would cost
  // a wake-up and a wait for a core). `fn` must not block for long: it holds
  // up the calling thread and the loop. Returns whether it ran here.
  bool RunHereOrPostGrouped(absl::AnyInvocable<void() &&> fn);
  // Set before Start (or before the first RunUntilIdle).
  void SetGroupHooks(absl::AnyInvocable<void()> begin, absl::AnyInvocable<void()> end);

  void Start();
  // Finishes the closure running now, then exits the thread. Idempotent.
  void Stop();

  // Runs everything that is ready, including due timers, until nothing is.
  // Returns the number of closures run. Only when not Start()ed.
  int RunUntilIdle();

  // Posts `fn` and waits until it has run. Must not be called on the loop thread.
  void RunSync(absl::AnyInvocable<void() &&> fn);

  // The loop's own thread, or the one running a closure for it (RunHereOrPostGrouped).
  bool IsLoopThread() const {
    const std::thread::id me = std::this_thread::get_id();
    return me == thread_id_ || me == borrower_.load(std::memory_order_acquire);
  }
  // Whether the started loop's thread waits for work with nothing queued, so
  // that RunHereOrPostGrouped would run its closure at once. For tests.
  bool WaitingForWork() {
    absl::MutexLock lock(&mu_);
    return waiting_ && ready_.empty() && !borrowed_;
  }

 private:
  struct Ready {
    absl::AnyInvocable<void() &&> fn;
    bool grouped = false;
    bool unhurried = false;
  };
  struct Timer {
    absl::Time when;
    uint64_t seq;
    mutable absl::AnyInvocable<void() &&> fn;
    bool operator>(const Timer& o) const { return when != o.when ? when > o.when : seq > o.seq; }
  };
  void Loop();
  // Runs one ready closure, opening or closing the group around it.
  void RunOne(Ready item);
  // Ends the open group, if any. On the running thread only.
  void EndGroup();
  // Moves due timers into ready_. Requires mu_.
  void PromoteDueTimers(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Push(Ready item) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Ready Pop() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const Clock* clock_;
  absl::Mutex mu_;
  std::deque<Ready> ready_ ABSL_GUARDED_BY(mu_);
  size_t hurried_ ABSL_GUARDED_BY(mu_) = 0;    // items in ready_ that wake the loop
  size_t unhurried_ ABSL_GUARDED_BY(mu_) = 0;  // and those that do not
  // When the oldest unhurried item in ready_ must run (kUnhurriedDelay after
  // the first one posted since ready_ last held none).
  absl::Time unhurried_due_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool timer_added_ ABSL_GUARDED_BY(mu_) = false;
  // The loop's thread waits for work with no group open (ready_ was empty).
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;
  // Another thread runs a closure for the loop (RunHereOrPostGrouped): the
  // loop's thread runs nothing until it is done.
  bool borrowed_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<std::thread::id> borrower_{};
  std::thread thread_;
  std::thread::id thread_id_;
  // Touched only by the thread that runs closures (the loop's, or one that
  // borrowed it: handed over under mu_).
  absl::AnyInvocable<void()> group_begin_;
  absl::AnyInvocable<void()> group_end_;
  int group_size_ = 0;  // closures run in the open group; 0: none open
};

}  // namespace musafarm
