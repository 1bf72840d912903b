#pragma once

#include <atomic>

#include "common/event_loop.h"
#include "coordinator/user_api.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::coordinator {

// gRPC adapter for the user API. Every call is answered by `api` on the core
// loop, its absl::Status passed on with the same code; no handler blocks a gRPC
// thread.
// Every Job, Task and Agent it sends gets its Timestamp fields filled from the
// *_us fields beside them here, at the wire (common/api_times.h).
// `insecure`: the server is plaintext, so agent names are not authenticated
// (ListAgentsResponse.insecure says so).
class UserServiceImpl final : public v1::UserService::CallbackService {
 public:
  UserServiceImpl(EventLoop* loop, UserApi* api, bool insecure = true)
      : loop_(loop), api_(api), insecure_(insecure) {}

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

 private:
  EventLoop* const loop_;  // not owned; outlives the server
  UserApi* const api_;     // not owned; used only on loop_
  const bool insecure_;
  std::atomic<uint64_t> next_watch_{1};
};

}  // namespace musafarm::coordinator
