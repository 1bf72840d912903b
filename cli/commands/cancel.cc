#include <ostream>

#include "cli/client.h"
#include "cli/commands/commands.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {

int RunCancel(const CommandEnv& env, const std::string& id) {
  v1::CancelRequest req;
  req.set_id(id);
  v1::CancelResponse resp;
  if (grpc::Status s = CallActive<v1::UserService>(
          env, Repeat::kOnce, [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.Cancel(ctx, req, &resp);
          });
      !s.ok()) {
    return ReportRpcError(env, s, "musafarm status " + id);
  }
  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
  } else {
    *env.out << "cancelled " << resp.cancelled_size() << " task(s)\n";
  }
  return kExitOk;
}

}  // namespace musafarm::cli
