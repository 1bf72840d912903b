#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "agent/executor/executor.h"

namespace musafarm::testing {

// Collects an execution's output and exit, for executor tests. Thread-safe:
// the executor calls back from its own thread.
struct ExecutionRecorder {
  absl::Mutex mu;
  std::string out ABSL_GUARDED_BY(mu);
  agent::ExitInfo exit;  // written before `done` is notified, read after
  absl::Notification done;

  agent::ExecCallbacks Callbacks() {
    agent::ExecCallbacks cb;
    cb.on_output = [this](std::string d) {
      absl::MutexLock lock(&mu);
      out += d;
    };
    cb.on_exit = [this](agent::ExitInfo i) {
      exit = std::move(i);
      done.Notify();
    };
    return cb;
  }
  std::string Out() {
    absl::MutexLock lock(&mu);
    return out;
  }
  // Waits until the output holds `needle`.
  bool WaitOutput(const std::string& needle, absl::Duration timeout = absl::Seconds(20)) {
    absl::MutexLock lock(&mu);
    auto has = [&] {
      mu.AssertHeld();  // Await evaluates the condition under `mu`
      return absl::StrContains(out, needle);
    };
    return mu.AwaitWithTimeout(absl::Condition(&has), timeout);
  }
  bool Wait(absl::Duration timeout = absl::Seconds(30)) {
    return done.WaitForNotificationWithTimeout(timeout);
  }
};

}  // namespace musafarm::testing
