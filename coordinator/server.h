#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/event_loop.h"
#include "coordinator/access_control.h"
#include "coordinator/agent_event_sink.h"
#include "coordinator/coordinator_list.h"
#include "coordinator/enrollment_api.h"
#include "coordinator/schedule_api.h"
#include "coordinator/tls_material.h"
#include "coordinator/user_admin.h"
#include "coordinator/user_api.h"

namespace grpc {
class Server;
}

namespace musafarm::coordinator {

class AgentServiceImpl;
struct AgentStreamStats;
class ScheduleServiceImpl;
class BlobStore;
class ContentServiceImpl;
class UserServiceImpl;

// The coordinator's gRPC server: AgentService and UserService on one port,
// delivering to the two seams on `loop`. Knows no Core: transport tests serve a
// fake sink and API with it.
// With `tls` it serves TLS only, and every agent stream must present a client
// certificate that chains to tls->agent_ca_pem; without, it serves plaintext
// (--insecure) and agents are not authenticated.
class Server {
 public:
  // None owned; all outlive the server.
  // `enrollment` (may be null) answers Enroll and RenewCertificate.
  // `access` decides who may make each user call; null: one that knows no
  // token (with TLS every user call is refused; with --insecure the OS user
  // is admin). `admin` (may be null) serves the token and audit calls and
  // writes the audit log.
  Server(EventLoop* loop, AgentEventSink* agents, UserApi* users,
         std::optional<TlsMaterial> tls = std::nullopt, EnrollmentApi* enrollment = nullptr,
         const AccessControl* access = nullptr, UserAdmin* admin = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Also serves ScheduleService from `api` (not owned; used on `loop`). Before Start.
  void ServeSchedules(ScheduleApi* api);
  // Also serves ContentService over `blobs`, its file work on `io` (issue 17).
  // Before Start(); both outlive the server.
  // `resolve` (may be empty): git inputs of submissions (UserServiceImpl::
  // set_input_resolver), on `io` too.
  void ServeContent(EventLoop* io, BlobStore* blobs,
                    std::function<absl::Status(v1::SubmitRequest*)> resolve = nullptr);

  // Answers ListCoordinators with `list`, run on `io` (issue 20). Before
  // Start(); `io` outlives the server.
  void ServeCoordinators(EventLoop* io, CoordinatorLister list);

  // Binds `listen` (host:port; port 0 picks a free one) and serves. Returns the
  // bound port. `loop` must be running.
  absl::StatusOr<int> Start(const std::string& listen);

  // Stops accepting calls and gives those open `grace` to finish, then cancels
  // them. The caller ends its streams first (they finish from the loop).
  void Shutdown(absl::Duration grace);

  // The agent streams' read backpressure (AgentServiceImpl).
  const AgentStreamStats& agent_stream_stats() const;

 private:
  EventLoop* const loop_;
  const AccessControl* const access_;  // may be null: own_access_
  UserAdmin* const admin_;
  const std::optional<TlsMaterial> tls_;
  std::unique_ptr<AccessControl> own_access_;  // when none was given
  std::unique_ptr<AgentServiceImpl> agent_service_;
  std::unique_ptr<UserServiceImpl> user_service_;
  std::unique_ptr<ScheduleServiceImpl> schedule_service_;  // when ServeSchedules was called
  std::unique_ptr<ContentServiceImpl> content_service_;  // with ServeContent()
  std::unique_ptr<grpc::Server> server_;  // destroyed before the services
};

}  // namespace musafarm::coordinator
