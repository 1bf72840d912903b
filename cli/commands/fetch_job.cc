#include "cli/commands/fetch_job.h"

#include "grpcpp/grpcpp.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {

grpc::Status FetchJob(const CommandEnv& env, const std::string& job_id, v1::Job* job) {
  v1::GetJobRequest req;
  req.set_job_id(job_id);
  return CallActive<v1::UserService>(
      env, Repeat::kIdempotent,
      [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) { return stub.GetJob(ctx, req, job); });
}

}  // namespace musafarm::cli
