#include "coordinator/standby_server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"

namespace musafarm::coordinator {
namespace {

// One call: answered at once, whatever the method; nothing is read.
class Refusal final : public grpc::ServerGenericBidiReactor {
 public:
  Refusal(grpc::GenericCallbackServerContext* ctx, const std::string& active) {
    std::string message = "standby coordinator; ";
    if (active.empty()) {
      absl::StrAppend(&message, "no coordinator is active at the moment (a takeover is under way)");
    } else {
      absl::StrAppend(&message, "the active coordinator is at ", active);
      ctx->AddTrailingMetadata(kActiveCoordinatorKey, active);
    }
    Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, message));
  }
  void OnDone() override { delete this; }
};

class RefuseEverything final : public grpc::CallbackGenericService {
 public:
  explicit RefuseEverything(std::function<std::string()> active) : active_(std::move(active)) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    return new Refusal(ctx, active_());
  }

 private:
  const std::function<std::string()> active_;
};

}  // namespace

StandbyServer::StandbyServer(std::optional<TlsMaterial> tls, std::function<std::string()> active)
    : tls_(std::move(tls)), service_(std::make_unique<RefuseEverything>(std::move(active))) {}

StandbyServer::~StandbyServer() { Shutdown(); }

absl::StatusOr<int> StandbyServer::Start(const std::string& listen) {
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(
      listen, tls_.has_value() ? MakeServerCredentials(*tls_) : grpc::InsecureServerCredentials(),
      &port);
  builder.RegisterCallbackGenericService(service_.get());
  // One process per port, as the active server (server.cc).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    server_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on '", listen, "' (address in use or malformed?)"));
  }
  return port;
}

void StandbyServer::Shutdown() {
  if (server_ == nullptr) return;
  server_->Shutdown();  // every call is already finished: nothing to wait for
  server_.reset();
}

}  // namespace musafarm::coordinator
