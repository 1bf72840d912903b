#include "coordinator/standby_server.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/grpc_status.h"
#include "coordinator/grpc_call.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/grpcpp.h"

namespace musafarm::coordinator {
namespace {

constexpr char kListCoordinatorsMethod[] = "/musafarm.v1.UserService/ListCoordinators";

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

// ListCoordinators, answered on `io`: admitted and listed there, since both
// read the database. Its request is empty, so it is not read. It finishes
// from the closure, so it lives until then.
class ListCoordinatorsCall final : public grpc::ServerGenericBidiReactor {
 public:
  ListCoordinatorsCall(grpc::GenericCallbackServerContext* ctx, const AccessControl* access,
                       EventLoop* io, const CoordinatorLister* list) {
    io->Post([this, ctx, access, list] {
      absl::StatusOr<Principal> who = AdmitCall(ctx, *access, nullptr, Action::kRead, "", "");
      if (!who.ok()) {
        Finish(ToGrpc(who.status()));
        return;
      }
      absl::StatusOr<v1::ListCoordinatorsResponse> r = (*list)();
      if (!r.ok()) {
        Finish(ToGrpc(r.status()));
        return;
      }
      const std::string bytes = r->SerializeAsString();
      grpc::Slice slice(bytes);
      response_ = grpc::ByteBuffer(&slice, 1);
      StartWriteAndFinish(&response_, grpc::WriteOptions(), grpc::Status::OK);
    });
  }
  void OnDone() override { delete this; }

 private:
  grpc::ByteBuffer response_;
};

class StandbyService final : public grpc::CallbackGenericService {
 public:
  StandbyService(std::function<std::string()> active, const AccessControl* access, EventLoop* io,
                 const CoordinatorLister* list)
      : active_(std::move(active)), access_(access), io_(io), list_(list) {}
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    if (io_ != nullptr && ctx->method() == kListCoordinatorsMethod) {
      return new ListCoordinatorsCall(ctx, access_, io_, list_);
    }
    return new Refusal(ctx, active_());
  }

 private:
  const std::function<std::string()> active_;
  const AccessControl* const access_;
  EventLoop* const io_;  // null: ListCoordinators is refused like the rest
  const CoordinatorLister* const list_;
};

}  // namespace

StandbyServer::StandbyServer(std::optional<TlsMaterial> tls, std::function<std::string()> active)
    : tls_(std::move(tls)), active_(std::move(active)) {}

StandbyServer::~StandbyServer() { Shutdown(); }

void StandbyServer::ServeCoordinators(const AccessControl* access, EventLoop* io,
                                      CoordinatorLister list) {
  access_ = access;
  list_io_ = io;
  list_ = std::move(list);
}

absl::StatusOr<int> StandbyServer::Start(const std::string& listen) {
  service_ = std::make_unique<StandbyService>(active_, access_, list_io_, &list_);
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
  // Refusals are finished already; a ListCoordinators call finishes from its
  // closure on the listing loop, which runs until this returns.
  server_->Shutdown();
  server_.reset();
}

}  // namespace musafarm::coordinator
