#pragma once

#include <memory>
#include <string>

#include "agent/coordinator_link.h"

namespace musafarm::agent {

// The CoordinatorLink over gRPC (grpc_coordinator_link.cc, the only agent code
// that includes gRPC): owns the channel to `target` (keepalive tuned for long
// idle streams) and opens one AgentService.Connect stream per session
// (CoordinatorStream). Must outlive every session it opened and the Agent that
// uses it: a stream's ClientContext must die before its channel.
std::unique_ptr<CoordinatorLink> NewGrpcCoordinatorLink(const std::string& target);

}  // namespace musafarm::agent
