#pragma once

#include <string>

#include "cli/client.h"
#include "grpcpp/support/status.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::cli {

// GetJob with the unary deadline; the caller reports a failure with
// ReportRpcError. Shared by status, results and artifacts.
grpc::Status FetchJob(const CommandEnv& env, const std::string& job_id, v1::Job* job);

}  // namespace musafarm::cli
