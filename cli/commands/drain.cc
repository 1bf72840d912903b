#include <ostream>

#include "cli/client.h"
#include "cli/commands/commands.h"
#include "cli/render.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {

int RunDrain(const CommandEnv& env, const std::string& agent, bool undrain) {
  std::unique_ptr<v1::UserService::Stub> stub = v1::UserService::NewStub(NewChannel(env));
  v1::DrainRequest req;
  req.set_agent(agent);
  req.set_undrain(undrain);
  v1::DrainResponse resp;
  grpc::ClientContext ctx;
  SetUnaryDeadline(&ctx);
  if (grpc::Status s = stub->Drain(&ctx, req, &resp); !s.ok()) return ReportRpcError(env, s);
  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
  } else {
    *env.out << "agent " << resp.agent().name() << " is " << AgentStatus(resp.agent()) << "\n";
  }
  return kExitOk;
}

}  // namespace musafarm::cli
