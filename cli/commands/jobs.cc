#include <ostream>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "cli/client.h"
#include "cli/color.h"
#include "cli/commands/commands.h"
#include "cli/render.h"
#include "common/duration_text.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {
namespace {

// Unix microseconds `text` (a duration, "7d") before `now`, into *us;
// false after saying what is wrong with `flag`.
bool AgoMicros(const CommandEnv& env, const char* flag, const std::string& text, int64_t* us) {
  absl::Duration ago;
  if (!ParseDurationText(text, &ago)) {
    *env.err << "musafarm: jobs: " << flag << " " << text
             << ": expected a duration like 7d, 12h, 30m\n";
    return false;
  }
  *us = absl::ToUnixMicros(env.clock->Now() - ago);
  return true;
}

}  // namespace

int RunJobs(const CommandEnv& env, const JobsOptions& opts) {
  v1::ListJobsRequest req;
  req.set_limit(opts.limit);
  req.set_mine(opts.mine);
  req.set_user(opts.user);
  for (const std::string& name : opts.states) {
    v1::JobState state = v1::JOB_STATE_UNSPECIFIED;
    if (!v1::JobState_Parse("JOB_STATE_" + absl::AsciiStrToUpper(name), &state) ||
        state == v1::JOB_STATE_UNSPECIFIED) {
      *env.err << "musafarm: jobs: --state " << name
               << ": not a job state (running, succeeded, failed, cancelled)\n";
      return kExitUsage;
    }
    req.add_states(state);
  }
  req.set_name_contains(opts.name);
  int64_t us = 0;
  if (!opts.since.empty()) {
    if (!AgoMicros(env, "--since", opts.since, &us)) return kExitUsage;
    req.set_created_after_us(us);
  }
  if (!opts.older_than.empty()) {
    if (!AgoMicros(env, "--older-than", opts.older_than, &us)) return kExitUsage;
    req.set_created_before_us(us);
  }

  v1::ListJobsResponse resp;
  if (grpc::Status s = CallActive<v1::UserService>(
          env, Repeat::kIdempotent, [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.ListJobs(ctx, req, &resp);
          });
      !s.ok()) {
    return ReportRpcError(env, s);
  }

  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
    return kExitOk;
  }
  const std::vector<v1::Job> jobs(resp.jobs().begin(), resp.jobs().end());
  std::vector<std::string> lines = RenderJobs(jobs, env.clock->Now(), env.tz);
  if (env.color) lines = ColorStateColumn(std::move(lines));
  for (const std::string& l : lines) *env.out << l << "\n";
  return kExitOk;
}

}  // namespace musafarm::cli
