#include "common/coordinator_targets.h"

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/backoff.h"
#include "grpcpp/client_context.h"

namespace musafarm {
namespace {

// Texts gRPC 1.51 gives an UNAVAILABLE call that never got a connection: no
// server saw it. Everything else UNAVAILABLE (a reset, "Socket closed", a
// GOAWAY) may have come after the request went out.
bool NeverConnected(const std::string& message) {
  for (const char* sign : {"failed to connect to all addresses", "DNS resolution failed",
                           "Connection refused", "No route to host", "empty address list",
                           "Failed to connect to remote host"}) {
    if (absl::StrContains(message, sign)) return true;
  }
  return false;
}

std::string Describe(const CallEnd& end, const grpc::Status& status) {
  if (end.reach == CallReach::kStandby) {
    return end.active.empty() ? "standby, no active coordinator yet"
                              : absl::StrCat("standby, the active is at ", end.active);
  }
  std::string msg = status.error_message();
  if (msg.empty()) msg = absl::StrCat("status ", static_cast<int>(status.error_code()));
  return msg;
}

}  // namespace

CallEnd ClassifyCallEnd(const grpc::Status& status,
                        const std::multimap<grpc::string_ref, grpc::string_ref>& trailers) {
  CallEnd end;
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    end.reach = CallReach::kMaybeReached;
    return end;
  }
  if (status.error_code() != grpc::StatusCode::UNAVAILABLE) return end;  // kAnswered
  auto it = trailers.find(kActiveCoordinatorMetadata);
  if (it != trailers.end()) {
    end.reach = CallReach::kStandby;
    end.active.assign(it->second.data(), it->second.size());
    return end;
  }
  // The wire contract's message, for a standby that knows no active one (and
  // so sends no hint).
  if (absl::StartsWith(status.error_message(), "standby coordinator")) {
    end.reach = CallReach::kStandby;
    return end;
  }
  end.reach = NeverConnected(status.error_message()) ? CallReach::kUnreached
                                                      : CallReach::kMaybeReached;
  return end;
}

CoordinatorTargets::CoordinatorTargets(std::vector<std::string> addresses)
    : addresses_(std::move(addresses)) {
  absl::MutexLock lock(&mu_);
  if (!addresses_.empty()) current_ = addresses_.front();
}

std::string CoordinatorTargets::Current() const {
  absl::MutexLock lock(&mu_);
  return current_;
}

void CoordinatorTargets::MarkGood(const std::string& address) {
  absl::MutexLock lock(&mu_);
  current_ = address;
}

std::string CoordinatorTargets::Failed(const std::string& address, const CallEnd& end) {
  absl::MutexLock lock(&mu_);
  // Someone else moved on already (another thread's failure): keep that.
  if (current_ != address) return current_;
  if (end.reach == CallReach::kStandby && !end.active.empty() && end.active != address) {
    current_ = end.active;
    return current_;
  }
  auto it = std::find(addresses_.begin(), addresses_.end(), address);
  // A hinted address outside the list that failed: back to the list's start.
  if (it == addresses_.end() || ++it == addresses_.end()) it = addresses_.begin();
  current_ = *it;
  return current_;
}

grpc::Status CallActive(
    CoordinatorTargets& targets, const FailoverPolicy& policy,
    absl::FunctionRef<grpc::Status(const std::string& address, grpc::ClientContext* ctx)> call) {
  Backoff backoff(policy.backoff_initial, policy.backoff_max);
  const absl::Time start = absl::Now();
  std::vector<std::string> tried;  // "ADDRESS: what happened", this round
  // A round ends when every listed address (and the hints they gave) failed
  // once; only then is there a pause.
  size_t failures_this_round = 0;
  size_t tries_since_pause = 0;  // hints included: two standbys naming each other
  const size_t round = std::max<size_t>(targets.addresses().size(), 1);
  grpc::Status last;
  while (true) {
    const std::string address = targets.Current();
    grpc::ClientContext ctx;
    if (policy.prepare) policy.prepare(&ctx);
    grpc::Status status = call(address, &ctx);
    const CallEnd end = ClassifyCallEnd(status, ctx.GetServerTrailingMetadata());
    if (end.reach == CallReach::kAnswered) {
      targets.MarkGood(address);
      return status;
    }
    if (end.reach == CallReach::kMaybeReached && !policy.idempotent) {
      return grpc::Status(status.error_code(),
                          absl::StrCat(status.error_message(), " (", kMayHaveBeenDoneNote,
                                       ": it was sent to ", address,
                                       " before the connection was lost)"));
    }
    tried.push_back(absl::StrCat(address, ": ", Describe(end, status)));
    ++tries_since_pause;
    last = status;
    targets.Failed(address, end);
    // A standby's hint is followed at once: it is not a failed round.
    const bool hinted = end.reach == CallReach::kStandby && !end.active.empty() &&
                        end.active != address;
    if (!hinted) ++failures_this_round;
    // A hint is followed without a pause or a deadline check, unless hints
    // go round in circles (two standbys naming each other).
    const bool loose_hint = hinted && tries_since_pause <= 2 * round;
    if (!loose_hint && absl::Now() - start >= policy.give_up_after) {
      // One try at one address: its own error, as a single coordinator always said.
      if (tried.size() == 1 && end.reach != CallReach::kStandby) return last;
      // Only the last round's tries: earlier rounds said the same.
      const size_t keep = std::min(tried.size(), round);
      return grpc::Status(
          last.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ? grpc::StatusCode::UNAVAILABLE
                                                                    : last.error_code(),
          absl::StrCat("no active coordinator answered",
                       policy.give_up_after > absl::ZeroDuration()
                           ? absl::StrCat(" in ", absl::FormatDuration(policy.give_up_after))
                           : "",
                       " (tried ",
                       absl::StrJoin(tried.end() - static_cast<std::ptrdiff_t>(keep), tried.end(),
                                     "; "),
                       ")"));
    }
    if (failures_this_round >= round || tries_since_pause > 2 * round) {
      failures_this_round = 0;
      tries_since_pause = 0;
      const absl::Duration pause = backoff.Next();
      if (policy.sleep) {
        policy.sleep(pause);
      } else {
        absl::SleepFor(pause);
      }
    }
  }
}

}  // namespace musafarm
