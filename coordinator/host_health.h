#pragma once

#include <cstdint>
#include <set>
#include <vector>

#include "musafarm/v1/agent_service.pb.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// An agent's host health (issue 16, item 3) as the coordinator keeps it in
// its Agent row: the stage kinds it takes no work of for now (its Docker
// daemon is down) and the GPUs it fenced (failed their probe), each with why.
// Agents from before these fields send none: everything available.

// Copies what a registration says into `agent`.
void SetHostHealth(const v1::Capabilities& caps, v1::Agent* agent);

// What changed when a heartbeat is applied to `agent`.
struct HostHealthChange {
  bool changed = false;  // anything the Agent row shows
  bool freed = false;    // a kind or a GPU is usable again: placement should look
};
HostHealthChange ApplyHostHealth(const v1::Heartbeat& beat, v1::Agent* agent);

// ExecutorKinds(agent) less its unavailable kinds: what placement may give it.
std::vector<v1::StageKind> AvailableKinds(const v1::Agent& agent);

// Its fenced GPU numbers (never handed out).
std::set<int32_t> FencedGpus(const v1::Agent& agent);

}  // namespace musafarm::coordinator
