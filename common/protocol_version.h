#pragma once

#include <cstdint>

#include "absl/status/status.h"

namespace musafarm {

// The agent protocol's version (issue 16, item 2): Register.protocol_version
// from the agent, Registered.protocol_version from the coordinator. Raise it
// when a change to agent_service.proto means an older peer would misbehave
// rather than merely miss a feature (docs/protocol.md, "Compatibility"); raise
// kMinAgentProtocolVersion when this coordinator stops serving older agents.
//   1  every agent before the field (it sends 0)
//   2  agents that announce it
inline constexpr uint32_t kProtocolVersion = 2;
inline constexpr uint32_t kMinAgentProtocolVersion = 1;

// What an agent announcing `announced` speaks: 0 (the field unset, an agent
// from before it) is version 1.
uint32_t AgentProtocolVersion(uint32_t announced);

// OK when this coordinator serves an agent announcing `announced`; else
// FAILED_PRECONDITION naming both versions, e.g. "agent protocol 9 is not
// supported by this coordinator (protocol 2, agents 1..2)". The agent takes
// FAILED_PRECONDITION at registration as final and exits.
absl::Status CheckAgentProtocol(uint32_t announced);

}  // namespace musafarm
