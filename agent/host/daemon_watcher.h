#pragma once

#include <functional>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace musafarm::agent {

// Watches the Docker daemon this agent's docker stages use (issue 16, item 3):
// pings it every `interval` while it answers and, while it does not, again
// after a jittered backoff from `retry_initial` up to `retry_max`, so that a
// daemon back after a restart is noticed within about that. One thread for
// all checks, sleeping between them (no thread per check).
//
// Current() is the last verdict (OkStatus until the first ping says
// otherwise). MarkDown() sets it at once, for an attempt that just failed
// because the daemon did not answer, and pings soon. `on_change` runs on the
// watcher's thread whenever a ping changes the verdict from reachable to not
// or back (and after MarkDown, when the next ping finds the daemon back);
// `on_up` after every ping that finds it reachable after it was not (and
// after the first successful ping), before the next one: e.g. to retry
// removals that failed meanwhile. Neither may call back into the watcher.
class DaemonWatcher {
 public:
  struct Options {
    absl::Duration interval = absl::Seconds(5);
    absl::Duration retry_initial = absl::Milliseconds(250);
    absl::Duration retry_max = absl::Seconds(2);
  };
  using Ping = std::function<absl::Status()>;

  DaemonWatcher(Ping ping, Options options, std::function<void(const absl::Status&)> on_change,
                std::function<void()> on_up = nullptr);
  ~DaemonWatcher();  // Stop()
  DaemonWatcher(const DaemonWatcher&) = delete;
  DaemonWatcher& operator=(const DaemonWatcher&) = delete;

  void Start();
  // Stops the thread after the ping in progress, if any. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);
  // Pings again now instead of at the next interval. Thread-safe.
  void CheckSoon() ABSL_LOCKS_EXCLUDED(mu_);
  // The daemon is known not to answer (`why`); pings soon. Thread-safe.
  void MarkDown(const std::string& why) ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Current() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run();

  const Ping ping_;
  const Options options_;
  const std::function<void(const absl::Status&)> on_change_;
  const std::function<void()> on_up_;
  mutable absl::Mutex mu_;
  absl::Status current_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool poke_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace musafarm::agent
