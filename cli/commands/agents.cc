#include <ostream>
#include <vector>

#include "cli/client.h"
#include "cli/commands/commands.h"
#include "cli/render.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {

int RunAgents(const CommandEnv& env) {
  v1::ListAgentsResponse resp;
  if (grpc::Status s = CallActive<v1::UserService>(
          env, Repeat::kIdempotent, [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.ListAgents(ctx, v1::ListAgentsRequest(), &resp);
          });
      !s.ok()) {
    return ReportRpcError(env, s);
  }
  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
    return kExitOk;
  }
  const std::vector<v1::Agent> agents(resp.agents().begin(), resp.agents().end());
  for (const std::string& l : RenderAgents(agents, env.clock->Now())) *env.out << l << "\n";
  if (resp.insecure()) {
    *env.out << "warning: the coordinator runs with --insecure: agent names are as the agents "
                "declared them, not authenticated\n";
  }
  return kExitOk;
}

}  // namespace musafarm::cli
