#include "common/event_loop.h"

#include <algorithm>
#include <utility>

#include "absl/synchronization/notification.h"

namespace musafarm {

EventLoop::EventLoop(const Clock* clock) : clock_(clock) {}

EventLoop::~EventLoop() { Stop(); }

void EventLoop::Post(absl::AnyInvocable<void() &&> fn) {
  absl::MutexLock lock(&mu_);
  ready_.push_back(std::move(fn));
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
    ready_.push_back(std::move(timers_.top().fn));
    timers_.pop();
  }
}

void EventLoop::Loop() {
  for (;;) {
    absl::AnyInvocable<void() &&> fn;
    {
      absl::MutexLock lock(&mu_);
      for (;;) {
        if (stop_) return;
        PromoteDueTimers(clock_->Now());
        if (!ready_.empty()) break;
        timer_added_ = false;
        // Wake for a Post() or for the next timer, whichever comes first.
        absl::Duration wait = absl::Seconds(1);
        if (!timers_.empty()) wait = std::min(wait, timers_.top().when - clock_->Now());
        if (wait > absl::ZeroDuration()) {
          mu_.AwaitWithTimeout(absl::Condition(
                                   +[](EventLoop* self) {
                                     self->mu_.AssertHeld();  // Await runs it under mu_
                                     return self->stop_ || !self->ready_.empty() ||
                                            self->timer_added_;
                                   },
                                   this),
                               wait);
        }
      }
      fn = std::move(ready_.front());
      ready_.pop_front();
    }
    std::move(fn)();
  }
}

int EventLoop::RunUntilIdle() {
  int ran = 0;
  for (;;) {
    absl::AnyInvocable<void() &&> fn;
    {
      absl::MutexLock lock(&mu_);
      PromoteDueTimers(clock_->Now());
      if (ready_.empty()) return ran;
      fn = std::move(ready_.front());
      ready_.pop_front();
    }
    std::move(fn)();
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
