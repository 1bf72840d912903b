#include <ostream>

#include "cli/client.h"
#include "cli/commands/commands.h"
#include "cli/render.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {

int RunDrain(const CommandEnv& env, const std::string& agent, bool undrain) {
  v1::DrainRequest req;
  req.set_agent(agent);
  req.set_undrain(undrain);
  v1::DrainResponse resp;
  // Draining (or undraining) twice leaves the same state: safe to repeat.
  if (grpc::Status s = CallActive<v1::UserService>(
          env, Repeat::kIdempotent, [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.Drain(ctx, req, &resp);
          });
      !s.ok()) {
    return ReportRpcError(env, s);
  }
  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
  } else {
    *env.out << "agent " << resp.agent().name() << " is " << AgentStatus(resp.agent()) << "\n";
  }
  return kExitOk;
}

}  // namespace musafarm::cli
