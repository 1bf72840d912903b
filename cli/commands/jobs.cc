#include <ostream>
#include <vector>

#include "cli/client.h"
#include "cli/commands/commands.h"
#include "cli/render.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {

int RunJobs(const CommandEnv& env, int limit, bool mine, const std::string& user) {
  std::unique_ptr<v1::UserService::Stub> stub = v1::UserService::NewStub(NewChannel(env));
  v1::ListJobsRequest req;
  req.set_limit(limit);
  req.set_mine(mine);
  req.set_user(user);
  v1::ListJobsResponse resp;
  grpc::ClientContext ctx;
  SetUnaryDeadline(&ctx);
  if (grpc::Status s = stub->ListJobs(&ctx, req, &resp); !s.ok()) return ReportRpcError(env, s);

  if (env.output == OutputFormat::kJson) {
    PrintJson(env, resp);
    return kExitOk;
  }
  const std::vector<v1::Job> jobs(resp.jobs().begin(), resp.jobs().end());
  for (const std::string& l : RenderJobs(jobs, env.clock->Now(), env.tz)) *env.out << l << "\n";
  return kExitOk;
}

}  // namespace musafarm::cli
