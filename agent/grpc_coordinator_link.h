#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/coordinator_link.h"
#include "agent/tls_material_source.h"

namespace musafarm::agent {

// The CoordinatorLink over gRPC (grpc_coordinator_link.cc, the only agent code
// that includes gRPC): owns a channel to each of `targets` it uses (keepalive
// tuned for long idle streams) and opens one AgentService.Connect stream per
// session (CoordinatorStream). `targets` (not empty) are the coordinators of
// one farm (issue 20): a session opens to the one that last answered; after
// a session a standby refused, one that found no server, or one that was
// lost, the next opens to the active coordinator the standby named, else to
// the next address (common/coordinator_targets.h). The agent re-registers
// there as after a coordinator restart. Must outlive every session it opened and the Agent that
// uses it: a stream's ClientContext must die before its channel.
// With `tls` the channel is TLS: the coordinator's certificate is verified
// against its ca_pem and the agent presents its own; when the material there
// is replaced (a renewed certificate), the next session opens on a new
// channel that presents it. Null: plaintext (--insecure). Not owned; must
// outlive the link.
std::unique_ptr<CoordinatorLink> NewGrpcCoordinatorLink(std::vector<std::string> targets,
                                                        TlsMaterialSource* tls);

}  // namespace musafarm::agent
