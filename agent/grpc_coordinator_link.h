#pragma once

#include <memory>
#include <string>

#include "agent/coordinator_link.h"
#include "agent/tls_material_source.h"

namespace musafarm::agent {

// The CoordinatorLink over gRPC (grpc_coordinator_link.cc, the only agent code
// that includes gRPC): owns the channel to `target` (keepalive tuned for long
// idle streams) and opens one AgentService.Connect stream per session
// (CoordinatorStream). Must outlive every session it opened and the Agent that
// uses it: a stream's ClientContext must die before its channel.
// With `tls` the channel is TLS: the coordinator's certificate is verified
// against its ca_pem and the agent presents its own; when the material there
// is replaced (a renewed certificate), the next session opens on a new
// channel that presents it. Null: plaintext (--insecure). Not owned; must
// outlive the link.
std::unique_ptr<CoordinatorLink> NewGrpcCoordinatorLink(const std::string& target,
                                                        TlsMaterialSource* tls);

}  // namespace musafarm::agent
