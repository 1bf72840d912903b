#pragma once

// The gRPC port of a standby coordinator (issue 20): every method of every
// service (user, agent, content, schedule, enrolment, health, reflection)
// answers UNAVAILABLE, "standby coordinator; the active coordinator is at
// HOST:PORT", with the trailing metadata
//   musafarm-active-coordinator: HOST:PORT
// (left out while no coordinator is active). Clients follow it (the failover
// work of issue 20). A generic callback service catches every method, so the
// standby creates none of the services and none of what they need (store,
// core, scheduler): it touches no farm state until it wins.
// The one exception, with ServeCoordinators: UserService.ListCoordinators is
// answered here (who is active is what an operator asks when things go
// wrong), admitted as the active one admits it (any authenticated reader).

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/event_loop.h"
#include "coordinator/access_control.h"
#include "coordinator/coordinator_list.h"
#include "coordinator/tls_material.h"

namespace grpc {
class Server;
class CallbackGenericService;
}  // namespace grpc

namespace musafarm::coordinator {

// The trailing metadata key naming the active coordinator.
inline constexpr char kActiveCoordinatorKey[] = "musafarm-active-coordinator";

class StandbyServer {
 public:
  // `active` returns the active coordinator's HOST:PORT, "" when none; it is
  // called on gRPC threads.
  StandbyServer(std::optional<TlsMaterial> tls, std::function<std::string()> active);
  ~StandbyServer();

  // Answers ListCoordinators: the caller admitted by `access`, then `list`
  // run on `io` (it reads the database). Before Start; all three outlive the
  // server, `io` running until Shutdown returns.
  void ServeCoordinators(const AccessControl* access, EventLoop* io, CoordinatorLister list);

  // Binds `listen` (host:port, port 0: any) and serves; the bound port.
  absl::StatusOr<int> Start(const std::string& listen);
  // Ends every call and closes the port (the active server binds it next).
  void Shutdown();

 private:
  std::optional<TlsMaterial> tls_;
  std::function<std::string()> active_;
  const AccessControl* access_ = nullptr;
  EventLoop* list_io_ = nullptr;
  CoordinatorLister list_;
  std::unique_ptr<grpc::CallbackGenericService> service_;
  std::unique_ptr<grpc::Server> server_;
};

}  // namespace musafarm::coordinator
