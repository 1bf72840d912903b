#include "coordinator/server.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/limits.h"
#include "coordinator/agent_service.h"
#include "coordinator/schedule_service.h"
#include "coordinator/content_service.h"
#include "coordinator/user_service.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/grpcpp.h"
#include "grpcpp/health_check_service_interface.h"

namespace musafarm::coordinator {

Server::Server(EventLoop* loop, AgentEventSink* agents, UserApi* users,
               std::optional<TlsMaterial> tls, EnrollmentApi* enrollment,
               const AccessControl* access, UserAdmin* admin)
    : loop_(loop),
      access_(access),
      admin_(admin),
      tls_(std::move(tls)),
      own_access_(access == nullptr
                      ? std::make_unique<AccessControl>(nullptr, /*insecure=*/!tls_.has_value())
                      : nullptr),
      agent_service_(std::make_unique<AgentServiceImpl>(
          loop, agents, tls_.has_value() ? &tls_->agent_ca_pem : nullptr, enrollment)),
      user_service_(std::make_unique<UserServiceImpl>(
          loop, users, access != nullptr ? access : own_access_.get(), admin)) {}

Server::~Server() { Shutdown(absl::ZeroDuration()); }

void Server::ServeSchedules(ScheduleApi* api) {
  schedule_service_ = std::make_unique<ScheduleServiceImpl>(
      loop_, api, own_access_ != nullptr ? own_access_.get() : access_, admin_);
}

void Server::ServeCoordinators(EventLoop* io, CoordinatorLister list) {
  user_service_->set_coordinator_lister(io, std::move(list));
}

void Server::ServeContent(EventLoop* io, BlobStore* blobs,
                          std::function<absl::Status(v1::SubmitRequest*)> resolve) {
  if (resolve) user_service_->set_input_resolver(io, std::move(resolve));
  content_service_ = std::make_unique<ContentServiceImpl>(
      io, blobs, own_access_ != nullptr ? own_access_.get() : access_,
      tls_.has_value() ? &tls_->agent_ca_pem : nullptr);
}

absl::StatusOr<int> Server::Start(const std::string& listen) {
  int port = 0;
  // grpc.health.v1 and server reflection, for probes and tools (grpcurl,
  // grpc_health_probe). Both are process-wide switches read by the builder.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(
      listen, tls_.has_value() ? MakeServerCredentials(*tls_) : grpc::InsecureServerCredentials(),
      &port);
  builder.RegisterService(agent_service_.get());
  builder.RegisterService(user_service_.get());
  if (schedule_service_ != nullptr) builder.RegisterService(schedule_service_.get());
  if (content_service_ != nullptr) builder.RegisterService(content_service_.get());
  // Agents ping even when idle (every 60 s; every 10 s before issue 19, and
  // older agents still do); without this the server counts those pings as
  // abuse (5 min default) and sends GOAWAY. Half the old period, so timer
  // jitter never makes a ping look early.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // The server pings a connection only after this long without reading from
  // it. An agent's liveness is its heartbeat deadline (HeartbeatPace), and
  // its heartbeats come up to 25 s apart on a farm of 10,000: a 20 s ping
  // here was one more round trip per heartbeat (issue 19). 2 min finds a
  // dead client of a user stream (a `watch` whose host vanished; the CLI
  // itself pings every 20 s) without pinging live agents.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 120'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  // Deliberately small (common/limits.h): a hostile 15 MB register is refused
  // by gRPC before it is decoded; honest messages are far below it.
  builder.SetMaxReceiveMessageSize(limits::kMaxRequestBytes);
  // gRPC binds with SO_REUSEPORT by default, so a second coordinator started on
  // the same port would bind it too and answer half the clients from its own
  // (empty) store. One process per port.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port == 0) {
    server_.reset();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on '", listen, "' (address in use or malformed?)"));
  }
  // The server starts only once the farm's state is recovered, so it serves
  // from the first call; each service is also named, for probes that ask.
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->SetServingStatus(true);
    for (const char* service : {"musafarm.v1.AgentService", "musafarm.v1.UserService"}) {
      health->SetServingStatus(service, true);
    }
    if (content_service_ != nullptr) {
      health->SetServingStatus("musafarm.v1.ContentService", true);
    }
    if (schedule_service_ != nullptr) {
      health->SetServingStatus("musafarm.v1.ScheduleService", true);
    }
  }
  return port;
}

void Server::Shutdown(absl::Duration grace) {
  if (server_ == nullptr) return;
  // Probes see NOT_SERVING while open calls drain.
  if (grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService()) {
    health->Shutdown();
  }
  server_->Shutdown(absl::ToChronoTime(absl::Now() + grace));
  server_.reset();
}

const AgentStreamStats& Server::agent_stream_stats() const {
  return agent_service_->stream_stats();
}

}  // namespace musafarm::coordinator
