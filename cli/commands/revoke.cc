#include <ostream>

#include "cli/client.h"
#include "cli/commands/commands.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {

int RunRevoke(const CommandEnv& env, const std::string& agent) {
  v1::RevokeAgentRequest req;
  req.set_agent(agent);
  v1::RevokeAgentResponse resp;
  if (grpc::Status s = CallActive<v1::UserService>(
          env, Repeat::kOnce, [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.RevokeAgent(ctx, req, &resp);
          });
      !s.ok()) {
    return ReportRpcError(env, s, "musafarm agents");
  }
  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
    return kExitOk;
  }
  *env.out << "agent " << resp.agent().name() << " is revoked: its stream (if any) was ended and "
           << "it is refused at every connect, renewal and enrolment";
  if (resp.serials_size() > 0) {
    *env.out << " (" << resp.serials_size() << " certificate"
             << (resp.serials_size() == 1 ? "" : "s") << " issued by this farm)";
  }
  *env.out << "\n";
  return kExitOk;
}

}  // namespace musafarm::cli
