// Agent, part: graceful shutdown (drain, hand back, final acks, close) and
// Stop(). See agent.h.
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/agent_internal.h"

namespace musafarm::agent {
namespace {

using internal::AttemptFileName;
using internal::Log;

// A shutdown's stream close waits this long for the coordinator to end it.
constexpr absl::Duration kCloseTimeout = absl::Seconds(5);

std::string DurationText(absl::Duration d) {
  return d == absl::ZeroDuration() ? "0s" : absl::FormatDuration(d);
}

}  // namespace

void Agent::Shutdown() {
  if (started_) loop_.Post([this] { BeginShutdown(); });
}

void Agent::HandBackNow() {
  if (!started_) return;
  loop_.Post([this] {
    BeginShutdown();
    HandBackRunning("agent shutting down: stopped at once (second signal)");
  });
}

bool Agent::WaitStopped(absl::Duration timeout) {
  return stopped_.WaitForNotificationWithTimeout(timeout);
}

void Agent::Stop() {
  if (!started_ || joined_) return;
  loop_.Post([this] {
    BeginShutdown();
    HandBackRunning("agent stopping");
  });
  // Bounded: executions end within their kill grace, then results get
  // final_ack_timeout and the close kCloseTimeout.
  if (!stopped_.WaitForNotificationWithTimeout(options_.final_ack_timeout + absl::Minutes(1))) {
    Log()->warn("stopping without a clean close of the stream");
  }
  loop_.Stop();
  // The loop is stopped: what its last turns wanted on disk is written here.
  if (durable_wanted_ || !awaiting_durable_.empty()) {
    std::vector<std::string> covered;
    covered.swap(awaiting_durable_);
    durable_wanted_ = false;
    if (absl::Status s = state_writer_->WriteDurableNow(Snapshot(), SpoolsToSync(covered));
        !s.ok()) {
      Log()->warn("cannot keep the finished attempts' results for a restart: {}",
                  std::string(s.message()));
    }
  }
  // Results still not acknowledged are left for the next run to report.
  for (auto& [key, a] : attempts_) {
    if (a.persisted && a.spool != nullptr) a.spool->Keep();
  }
  attempts_.clear();  // joins execution threads
  joined_ = true;
}

void Agent::BeginShutdown() {
  if (shutting_down_) return;
  shutting_down_ = true;
  int running = 0;
  for (const auto& [key, a] : attempts_) running += a.life.running() ? 1 : 0;
  const absl::Duration drain = options_.drain_timeout;
  Log()->info("shutting down: taking no new work; {} attempt(s) running, {}", running,
              drain == absl::InfiniteDuration()
                  ? std::string("waiting for them to finish")
                  : absl::StrCat("handed back if still running after ", DurationText(drain)));
  // A coordinator that loses a shutting-down agent re-queues at once what it
  // still has as ASSIGNED there, as never started (Core::DisconnectAgent):
  // every held Started goes out before the news of the shutdown, on the same
  // ordered stream, so that none of those is running here.
  for (auto& [key, a] : attempts_) FlushStarted(a);
  if (registered_) SendHeartbeat();  // unavailable: "shutting down"
  const std::string reason =
      absl::StrCat("agent shutting down: drain deadline of ", DurationText(drain), " passed");
  if (drain <= absl::ZeroDuration()) {
    HandBackRunning(reason);
  } else if (drain != absl::InfiniteDuration()) {
    loop_.PostAfter(drain, [this, reason] { HandBackRunning(reason); });
  }
  CheckShutdown();
}

void Agent::HandBackRunning(const std::string& reason) {
  if (handing_back_ || closing_) return;
  handing_back_ = true;
  for (auto& [key, a] : attempts_) {
    if (!a.life.running() || a.life.phase() == AttemptPhase::kStoppingStale) continue;
    if (!Apply(a, AttemptEvent::kHandBack)) continue;
    a.hand_back_reason = reason;
    Log()->info("task={} attempt={} stopping it to hand it back: {}", a.assignment.task_id(),
                a.assignment.attempt_id(), reason);
    if (a.execution != nullptr) a.execution->Cancel();
  }
  CheckShutdown();
}

void Agent::CheckShutdown() {
  if (!shutting_down_ || closing_) return;
  for (const auto& [key, a] : attempts_) {
    if (a.life.running()) return;  // still running, or being stopped
  }
  if (!final_wait_started_) {
    final_wait_started_ = true;
    if (!attempts_.empty()) {
      Log()->info("waiting up to {} for {} result(s) to be acknowledged",
                  DurationText(options_.final_ack_timeout), attempts_.size());
      loop_.PostAfter(options_.final_ack_timeout, [this] {
        final_wait_over_ = true;
        CheckShutdown();
      });
    }
  }
  if (!attempts_.empty() && !final_wait_over_) return;
  if (!attempts_.empty()) {
    Log()->warn(
        "{} result(s) not acknowledged; those kept in the work dir are reported by the next run "
        "of this agent (if it is back before the coordinator gives up on it)",
        attempts_.size());
  }
  CloseStream();
}

void Agent::CloseStream() {
  closing_ = true;
  if (session_ == nullptr) {
    Stopped();
    return;
  }
  // A half-close the coordinator answers by ending the stream once it has
  // read everything before it (hand-backs have no acknowledgement of their
  // own). Before registration there is nothing to deliver.
  if (registered_) {
    session_->CloseSend();
  } else {
    session_->Cancel();
  }
  const uint64_t gen = generation_;
  loop_.PostAfter(kCloseTimeout, [this, gen] {
    if (gen == generation_ && session_ != nullptr) session_->Cancel();
  });
}

void Agent::Stopped() {
  if (stopped_.HasBeenNotified()) return;
  Log()->info("stopped");
  stopped_.Notify();
}

}  // namespace musafarm::agent
