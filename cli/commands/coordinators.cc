#include <ostream>
#include <string>
#include <vector>

#include "cli/client.h"
#include "cli/commands/commands.h"
#include "cli/render.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {

int RunCoordinators(const CommandEnv& env) {
  // CallActive goes down the --coordinator list past dead ones; a standby
  // answers this call itself, so the first live coordinator tells.
  v1::ListCoordinatorsResponse resp;
  if (grpc::Status s = CallActive<v1::UserService>(
          env, Repeat::kIdempotent,
          [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.ListCoordinators(ctx, v1::ListCoordinatorsRequest(), &resp);
          });
      !s.ok()) {
    return ReportRpcError(env, s);
  }
  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
    return kExitOk;
  }
  for (const std::string& l : RenderCoordinators(resp, env.clock->Now(), env.tz)) {
    *env.out << l << "\n";
  }
  return kExitOk;
}

}  // namespace musafarm::cli
