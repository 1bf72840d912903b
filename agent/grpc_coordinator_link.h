#pragma once

#include <memory>
#include <optional>
#include <string>

#include "agent/coordinator_link.h"
#include "common/tls_channel.h"

namespace musafarm::agent {

// The CoordinatorLink over gRPC (grpc_coordinator_link.cc, the only agent code
// that includes gRPC): owns the channel to `target` (keepalive tuned for long
// idle streams) and opens one AgentService.Connect stream per session
// (CoordinatorStream). Must outlive every session it opened and the Agent that
// uses it: a stream's ClientContext must die before its channel.
// With `tls` the channel is TLS: the coordinator's certificate is verified
// against tls->ca_pem and the agent presents its own; without, plaintext
// (--insecure).
std::unique_ptr<CoordinatorLink> NewGrpcCoordinatorLink(const std::string& target,
                                                        const std::optional<ChannelTls>& tls);

}  // namespace musafarm::agent
