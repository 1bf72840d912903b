#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/event_loop.h"
#include "coordinator/access_control.h"
#include "coordinator/coordinator_list.h"
#include "coordinator/user_admin.h"
#include "coordinator/user_api.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::coordinator {

// gRPC adapter for the user API. Every call is answered by `api` on the core
// loop, its absl::Status passed on with the same code; no handler blocks a gRPC
// thread.
// Every Job, Task and Agent it sends gets its Timestamp fields filled from the
// *_us fields beside them here, at the wire (common/api_times.h).
// Every call is authenticated and authorized by `access` first (its bearer
// token from `authorization` metadata, in --insecure mode the OS user from
// `x-musafarm-os-user`); calls that change the farm, allowed or refused, are
// written to the audit log through `admin`.
// `access->insecure()`: the server is plaintext, so agent names are not
// authenticated (ListAgentsResponse.insecure says so).
class UserServiceImpl final : public v1::UserService::CallbackService {
 public:
  // None owned; all outlive the service. `admin` may be null (transport
  // tests): then token and audit calls fail and nothing is audited.
  UserServiceImpl(EventLoop* loop, UserApi* api, const AccessControl* access, UserAdmin* admin)
      : loop_(loop), api_(api), access_(access), admin_(admin) {}

  grpc::ServerUnaryReactor* Submit(grpc::CallbackServerContext* ctx, const v1::SubmitRequest* req,
                                   v1::SubmitResponse* resp) override;
  grpc::ServerUnaryReactor* GetJob(grpc::CallbackServerContext* ctx, const v1::GetJobRequest* req,
                                   v1::Job* resp) override;
  grpc::ServerUnaryReactor* ListJobs(grpc::CallbackServerContext* ctx,
                                     const v1::ListJobsRequest* req,
                                     v1::ListJobsResponse* resp) override;
  grpc::ServerWriteReactor<v1::WatchEvent>* WatchJob(grpc::CallbackServerContext* ctx,
                                                     const v1::WatchJobRequest* req) override;
  grpc::ServerUnaryReactor* GetLog(grpc::CallbackServerContext* ctx, const v1::GetLogRequest* req,
                                   v1::GetLogResponse* resp) override;
  grpc::ServerUnaryReactor* Cancel(grpc::CallbackServerContext* ctx, const v1::CancelRequest* req,
                                   v1::CancelResponse* resp) override;
  grpc::ServerUnaryReactor* Rerun(grpc::CallbackServerContext* ctx, const v1::RerunRequest* req,
                                  v1::RerunResponse* resp) override;
  grpc::ServerUnaryReactor* ListAgents(grpc::CallbackServerContext* ctx,
                                       const v1::ListAgentsRequest* req,
                                       v1::ListAgentsResponse* resp) override;
  grpc::ServerUnaryReactor* Drain(grpc::CallbackServerContext* ctx, const v1::DrainRequest* req,
                                  v1::DrainResponse* resp) override;
  grpc::ServerUnaryReactor* RevokeAgent(grpc::CallbackServerContext* ctx,
                                        const v1::RevokeAgentRequest* req,
                                        v1::RevokeAgentResponse* resp) override;
  grpc::ServerUnaryReactor* GetArtifact(grpc::CallbackServerContext* ctx,
                                        const v1::GetArtifactRequest* req,
                                        v1::GetArtifactResponse* resp) override;
  grpc::ServerUnaryReactor* CreateToken(grpc::CallbackServerContext* ctx,
                                        const v1::CreateTokenRequest* req,
                                        v1::CreateTokenResponse* resp) override;
  grpc::ServerUnaryReactor* ListTokens(grpc::CallbackServerContext* ctx,
                                       const v1::ListTokensRequest* req,
                                       v1::ListTokensResponse* resp) override;
  grpc::ServerUnaryReactor* RevokeToken(grpc::CallbackServerContext* ctx,
                                        const v1::RevokeTokenRequest* req,
                                        v1::RevokeTokenResponse* resp) override;
  grpc::ServerUnaryReactor* ListAudit(grpc::CallbackServerContext* ctx,
                                      const v1::ListAuditRequest* req,
                                      v1::ListAuditResponse* resp) override;
  // Issue 17: a submission's inputs that carry a source but no tree (git
  // inputs) are resolved by `resolve` on `io` before the core sees the
  // request (it runs git: never on a gRPC thread or the core loop). Before
  // the server starts; unset: such inputs reach the core, which refuses them.
  void set_input_resolver(EventLoop* io,
                          std::function<absl::Status(v1::SubmitRequest* request)> resolve) {
    resolve_io_ = io;
    resolve_ = std::move(resolve);
  }

  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* ctx,
                                   const v1::WhoAmIRequest* req,
                                   v1::WhoAmIResponse* resp) override;

  // Issue 20: ListCoordinators is answered by `list` on `io` (it may read
  // the database: never on a gRPC thread or the core loop). Before the server
  // starts; unset: the call is UNIMPLEMENTED.
  void set_coordinator_lister(EventLoop* io, CoordinatorLister list) {
    list_io_ = io;
    list_ = std::move(list);
  }
  grpc::ServerUnaryReactor* ListCoordinators(grpc::CallbackServerContext* ctx,
                                             const v1::ListCoordinatorsRequest* req,
                                             v1::ListCoordinatorsResponse* resp) override;

 private:
  // Authenticates the call and authorizes `what` (job actions are authorized
  // on the loop, where the job's owner is known: pass kRead for them). A
  // refusal of a state-changing call (`audit_action` non-empty) is audited.
  absl::StatusOr<Principal> Admit(grpc::CallbackServerContext* ctx, Action what,
                                  const std::string& audit_action,
                                  const std::string& audit_target);
  // The core's Submit and its audit line, on loop_.
  absl::Status SubmitOnLoop(const v1::SubmitRequest& req, const Principal& who,
                            const std::string& peer, v1::SubmitResponse* resp);
  // Finishes a Submit: a refusal at once, an accepted job once it is on disk
  // (UserApi::WhenDurable), on loop_.
  void AnswerWhenDurable(grpc::ServerUnaryReactor* reactor, absl::Status status);
  // Writes one audit line (no-op without `admin_`); a failure is logged.
  void Audit(const Principal& who, const std::string& peer, const std::string& action,
             const std::string& target, const absl::Status& outcome);

  EventLoop* const loop_;  // not owned; outlives the server
  UserApi* const api_;     // not owned; used only on loop_
  const AccessControl* const access_;
  UserAdmin* const admin_;
  std::atomic<uint64_t> next_watch_{1};
  EventLoop* resolve_io_ = nullptr;
  std::function<absl::Status(v1::SubmitRequest*)> resolve_;
  EventLoop* list_io_ = nullptr;
  CoordinatorLister list_;
};

}  // namespace musafarm::coordinator
