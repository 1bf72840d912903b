// `musafarm rerun JOB [--failed]` (issue 16, item 4): the coordinator makes a
// new job from the ended one's tasks as they were expanded at its submit.
#include <ostream>

#include "cli/client.h"
#include "cli/commands/commands.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {

int RunRerun(const CommandEnv& env, const RerunOptions& opts) {
  v1::RerunRequest req;
  req.set_job_id(opts.job_id);
  req.set_failed_only(opts.failed);
  for (const std::string& name : opts.secrets) {
    absl::StatusOr<std::string> value = SecretFromEnv(name, opts.env_lookup);
    if (!value.ok()) {
      *env.err << "musafarm: rerun: " << value.status().message() << "\n";
      return kExitUsage;
    }
    (*req.mutable_secrets())[name] = *std::move(value);
  }
  v1::RerunResponse resp;
  if (grpc::Status s = CallActive<v1::UserService>(
          env, Repeat::kOnce, [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.Rerun(ctx, req, &resp);
          });
      !s.ok()) {
    return ReportRpcError(env, s, "musafarm jobs (for a rerun of " + opts.job_id + ")");
  }
  return ReportNewJob(env, resp.job(), resp.warnings(), ", rerun of " + resp.job().rerun_of(),
                      opts.watch, opts.watch_options);
}

}  // namespace musafarm::cli
