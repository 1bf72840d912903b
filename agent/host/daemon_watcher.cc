#include "agent/host/daemon_watcher.h"

#include <algorithm>

#include "common/backoff.h"

namespace musafarm::agent {

DaemonWatcher::DaemonWatcher(Ping ping, Options options,
                             std::function<void(const absl::Status&)> on_change,
                             std::function<void()> on_up)
    : ping_(std::move(ping)),
      options_(options),
      on_change_(std::move(on_change)),
      on_up_(std::move(on_up)) {}

DaemonWatcher::~DaemonWatcher() { Stop(); }

void DaemonWatcher::Start() {
  if (!thread_.joinable()) thread_ = std::thread([this] { Run(); });
}

void DaemonWatcher::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void DaemonWatcher::CheckSoon() {
  absl::MutexLock lock(&mu_);
  poke_ = true;
}

void DaemonWatcher::MarkDown(const std::string& why) {
  absl::MutexLock lock(&mu_);
  current_ = absl::UnavailableError(why);
  poke_ = true;
}

absl::Status DaemonWatcher::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

void DaemonWatcher::Run() {
  Backoff backoff(options_.retry_initial, options_.retry_max);
  bool first = true;
  bool was_up = false;  // as of the last ping (MarkDown aside)
  for (;;) {
    const absl::Status status = ping_();
    bool changed;
    {
      absl::MutexLock lock(&mu_);
      changed = first || status.ok() != current_.ok();
      current_ = status;
    }
    if (changed) on_change_(status);
    if (status.ok() && (first || !was_up) && on_up_) on_up_();
    first = false;
    was_up = status.ok();
    absl::Duration wait = options_.interval;
    if (status.ok()) {
      backoff.Reset();
    } else {
      // Full jitter may say ~0: a floor keeps a dead daemon from costing a core.
      wait = std::max(backoff.Next(), options_.retry_initial / 2);
    }
    absl::MutexLock lock(&mu_);
    auto woken = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || poke_; };
    mu_.AwaitWithTimeout(absl::Condition(&woken), wait);
    if (stop_) return;
    poke_ = false;
  }
}

}  // namespace musafarm::agent
