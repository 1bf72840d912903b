#include "common/event_loop.h"

#include <algorithm>
#include <utility>

#include "absl/synchronization/notification.h"

namespace musafarm {

EventLoop::EventLoop(const Clock* clock) : clock_(clock) {}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Post(absl::AnyInvocable<void() &&> fn) {
  absl::MutexLock lock(&mu_);
  Push(Ready{std::move(fn), false, false});
}

void EventLoop::PostGrouped(absl::AnyInvocable<void() &&> fn) {
  absl::MutexLock lock(&mu_);
  Push(Ready{std::move(fn), true, false});
}

void EventLoop::PostGroupedUnhurried(absl::AnyInvocable<void() &&> fn) {
  absl::MutexLock lock(&mu_);
  Push(Ready{std::move(fn), true, true});
}

void EventLoop::Push(Ready item) {
  if (item.unhurried) {
    if (unhurried_++ == 0) unhurried_due_ = clock_->Now() + kUnhurriedDelay;
  } else {
    ++hurried_;
  }
  ready_.push_back(std::move(item));
}

EventLoop::Ready EventLoop::Pop() {
  Ready item = std::move(ready_.front());
  ready_.pop_front();
  if (!item.unhurried) {
    --hurried_;
  } else if (--unhurried_ == 0) {
    unhurried_due_ = absl::InfiniteFuture();
  }
  return item;
}

bool EventLoop::RunHereOrPostGrouped(absl::AnyInvocable<void() &&> fn) {
  {
    absl::MutexLock lock(&mu_);
    if (!waiting_ || stop_ || borrowed_ || !ready_.empty()) {
      Push(Ready{std::move(fn), true, false});
      return false;
    }
    borrowed_ = true;
  }
  borrower_.store(std::this_thread::get_id(), std::memory_order_release);
  // The loop's thread waits with no group open, so this is a group of its own.
  RunOne(Ready{std::move(fn), true, false});
  EndGroup();
  borrower_.store(std::thread::id(), std::memory_order_release);
  absl::MutexLock lock(&mu_);
  borrowed_ = false;
  return true;
}

void EventLoop::SetGroupHooks(absl::AnyInvocable<void()> begin, absl::AnyInvocable<void()> end) {
  group_begin_ = std::move(begin);
  group_end_ = std::move(end);
}

void EventLoop::RunOne(Ready item) {
  const bool grouped = item.grouped && group_begin_ && group_end_;
  if (!grouped || group_size_ >= kMaxGroup) EndGroup();
  if (grouped && group_size_ == 0) group_begin_();
  std::move(item.fn)();
  if (grouped) ++group_size_;
}

void EventLoop::EndGroup() {
  if (group_size_ == 0) return;
  group_size_ = 0;
  group_end_();
}

void EventLoop::PostAfter(absl::Duration delay, absl::AnyInvocable<void() &&> fn) {
  absl::MutexLock lock(&mu_);
  timers_.push(Timer{clock_->Now() + delay, next_seq_++, std::move(fn)});
  timer_added_ = true;  // the loop may be waiting for a later timer: re-plan
}

void EventLoop::Start() {
  absl::Notification started;
  thread_ = std::thread([this, &started] {
    thread_id_ = std::this_thread::get_id();
    started.Notify();
    Loop();
  });
  started.WaitForNotification();  // thread_id_ is set before anyone can ask
}

void EventLoop::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable() && !IsLoopThread()) thread_.join();
}

void EventLoop::PromoteDueTimers(absl::Time now) {
  while (!timers_.empty() && timers_.top().when <= now) {
    Push(Ready{std::move(timers_.top().fn), false, false});
    timers_.pop();
  }
}

void EventLoop::Loop() {
  // Once awake, the loop runs everything queued, unhurried items included,
  // before it waits again.
  bool draining = false;
  for (;;) {
    Ready item;
    bool stop = false, end_group = false;
    {
      absl::MutexLock lock(&mu_);
      for (;;) {
        if (borrowed_) {
          // Another thread runs a closure for the loop: nothing runs here,
          // not even the end at Stop, until it is done.
          mu_.Await(absl::Condition(
              +[](EventLoop* self) {
                self->mu_.AssertHeld();  // Await runs it under mu_
                return !self->borrowed_;
              },
              this));
          continue;
        }
        if (stop_) {
          stop = true;
          break;
        }
        const absl::Time now = clock_->Now();
        PromoteDueTimers(now);
        if (ready_.empty()) draining = false;
        if (hurried_ > 0 || now >= unhurried_due_) draining = !ready_.empty();
        if (draining) break;
        if (group_size_ > 0) {
          // Nothing more to join the group now: end it (its commit) before waiting.
          end_group = true;
          break;
        }
        timer_added_ = false;
        // Wake for a Post(), the next timer or the oldest unhurried item,
        // whichever comes first.
        absl::Duration wait = std::min(absl::Seconds(1), unhurried_due_ - now);
        if (!timers_.empty()) wait = std::min(wait, timers_.top().when - now);
        if (wait > absl::ZeroDuration()) {
          waiting_ = true;
          mu_.AwaitWithTimeout(absl::Condition(
                                   +[](EventLoop* self) {
                                     self->mu_.AssertHeld();  // Await runs it under mu_
                                     // While another thread runs a closure
                                     // for the loop, a post need not wake
                                     // this one: it is woken once that is
                                     // done (borrowed_ cleared).
                                     return self->stop_ ||
                                            (self->hurried_ > 0 && !self->borrowed_) ||
                                            self->timer_added_;
                                   },
                                   this),
                               wait);
          waiting_ = false;
        }
      }
      if (!stop && !end_group) item = Pop();
    }
    if (stop) {
      EndGroup();  // what the group's closures did is committed and sent
      return;
    }
    if (end_group) {
      EndGroup();
      continue;
    }
    RunOne(std::move(item));
  }
}

int EventLoop::RunUntilIdle() {
  int ran = 0;
  for (;;) {
    Ready item;
    bool idle = false;
    {
      absl::MutexLock lock(&mu_);
      PromoteDueTimers(clock_->Now());
      idle = ready_.empty();
      if (!idle) item = Pop();
    }
    if (idle) {
      if (group_size_ == 0) return ran;
      EndGroup();  // may post more: look again
      continue;
    }
    RunOne(std::move(item));
    ++ran;
  }
}

void EventLoop::RunSync(absl::AnyInvocable<void() &&> fn) {
  absl::Notification done;
  Post([&fn, &done]() mutable {
    std::move(fn)();
    done.Notify();
  });
  done.WaitForNotification();
}

}  // namespace musafarm
