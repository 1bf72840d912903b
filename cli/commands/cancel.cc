#include <ostream>

#include "cli/client.h"
#include "cli/commands/commands.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {

int RunCancel(const CommandEnv& env, const std::string& id) {
  std::unique_ptr<v1::UserService::Stub> stub = v1::UserService::NewStub(NewChannel(env));
  v1::CancelRequest req;
  req.set_id(id);
  v1::CancelResponse resp;
  grpc::ClientContext ctx;
  SetUnaryDeadline(&ctx);
  if (grpc::Status s = stub->Cancel(&ctx, req, &resp); !s.ok()) return ReportRpcError(env, s);
  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
  } else {
    *env.out << "cancelled " << resp.cancelled_size() << " task(s)\n";
  }
  return kExitOk;
}

}  // namespace musafarm::cli
