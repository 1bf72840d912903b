#include "cli/commands/watch_stream.h"

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/client.h"
#include "common/backoff.h"
#include "common/coordinator_targets.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {
namespace {

// Ends of a watch stream worth resuming from. This client never cancels its
// own watch, so CANCELLED means the server dropped the call, e.g. while
// shutting down for a restart.
bool IsTransient(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::CANCELLED:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return true;
    default:
      return false;
  }
}

}  // namespace

grpc::Status FollowWatch(const CommandEnv& env, const WatchOptions& opts,
                         absl::FunctionRef<v1::WatchJobRequest()> make_request,
                         absl::FunctionRef<void(const v1::WatchEvent&)> on_event,
                         absl::FunctionRef<void(const std::string&)> notice) {
  std::optional<CoordinatorTargets> own;
  CoordinatorTargets* targets = env.targets.get();
  if (targets == nullptr) targets = &own.emplace(std::vector<std::string>{env.coordinator});
  const bool several = targets->addresses().size() > 1;
  Backoff backoff(opts.backoff_initial, opts.backoff_max);
  bool ever_connected = false;
  std::optional<absl::Time> failing_since;  // set while reconnecting fails
  bool request_sent = false;                // opts.on_request_sent was called
  while (true) {
    // The active coordinator, as last known (issue 20): after a takeover the
    // resumed watch goes to the standby's hint or the next address, and asks
    // from the offsets printed so far, so no byte is repeated or lost.
    const std::string address = targets->Current();
    std::unique_ptr<v1::UserService::Stub> stub = v1::UserService::NewStub(NewChannel(env));
    // No deadline: a watch lasts as long as the job. A dead peer shows up as
    // UNAVAILABLE through keepalive or TCP.
    grpc::ClientContext ctx;
    const v1::WatchJobRequest req = make_request();
    std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader = stub->WatchJob(&ctx, req);
    if (!request_sent) {
      request_sent = true;
      if (opts.on_request_sent) opts.on_request_sent();
    }
    v1::WatchEvent ev;
    bool got_event = false;
    while (reader->Read(&ev)) {
      if (!got_event) {
        if (failing_since) notice(absl::StrCat("reconnected to the coordinator at ", address));
        targets->MarkGood(address);
      }
      got_event = true;
      ever_connected = true;
      failing_since.reset();
      backoff.Reset();
      on_event(ev);
    }
    grpc::Status status = reader->Finish();
    if (status.ok()) return status;
    ForgetChannel(env, address);  // a retry connects afresh
    const CallEnd end = ClassifyCallEnd(status, ctx.GetServerTrailingMetadata());
    if (end.reach != CallReach::kAnswered) targets->Failed(address, end);
    // A standby's pointer to the active one is followed at once.
    if (end.reach == CallReach::kStandby && !end.active.empty() && end.active != address) continue;
    // Before the first event only several coordinators are worth retrying.
    const bool retry = ever_connected ? IsTransient(status.error_code())
                                      : several && end.reach != CallReach::kAnswered;
    if (!retry) return status;

    const absl::Time now = env.clock->Now();
    if (!failing_since) {
      failing_since = now;
      notice(absl::StrCat(
          "lost the coordinator at ", address, " (",
          status.error_message().empty()
              ? absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()))
              : status.error_message(),
          "); reconnecting"));
    }
    if (now - *failing_since >= opts.give_up_after) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          absl::StrCat(status.error_message(), " (gave up reconnecting after ",
                                       absl::FormatDuration(opts.give_up_after), ")"));
    }
    absl::SleepFor(backoff.Next());
  }
}

}  // namespace musafarm::cli
