#pragma once

#include <string>
#include <vector>

#include "coordinator/scheduler.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// Why a queued task waits (Task.wait_reason, issue 16 item 1), in words for
// `status`, `watch`, the dashboard and the warnings of `submit`. Pure: the
// core hands it the agents as it sees them and stores nothing of it.

// One agent as WaitReason looks at it.
struct WaitAgent {
  // What it declared (labels, stage kinds, GPUs) and its state: draining,
  // unavailable reason, unavailable kinds and fenced GPUs with why.
  const v1::Agent* info = nullptr;
  bool connected = false;
  AgentSlots slots;  // placement's view of it now (free slots and GPUs, grants)
};

struct WaitVerdict {
  // Empty: some agent can take the task now (placement will).
  std::string reason;
  // False when no connected agent could ever run it as things stand: none
  // runs its stage kind, has its labels or has as many GPUs. Agents that only
  // are busy, draining or unhealthy do not make it false.
  bool runnable = true;
};

// The first that applies: "no connected agent", "no connected agent runs
// docker_build", "no connected agent with label role=dev", "needs 2 GPUs;
// agents have at most 1"; else, over the agents that would run it, what each
// is doing instead: "2 matching agents busy", "3 matching agents: 1 busy,
// 1 draining, 1 low on disk", "1 matching agent unavailable: <why>",
// "... not granted by the agent policy".
WaitVerdict WaitReason(const ReadyTask& task, const std::vector<WaitAgent>& agents);

// Whether the agent is one of those that would run `task`: connected, of its
// stage kind, with its labels and enough GPUs. It reads only what the agent
// declared when it registered and whether it is connected. Every agent that
// Fits the task is one; and when some agent is, WaitReason over just these
// agents (in the same order) says what it says over all of them, since only
// their holdups count.
bool WouldRun(const v1::Agent& info, bool connected, const ReadyTask& task);

// Whether a change of `agent`'s free slots or GPUs alone can change the
// task's WaitReason: only if it WouldRun the task, since the reason counts
// only those agents' holdups. For the others the reason reads only what they
// declared and whether they are connected. Lets the core recompute, after a
// pass that changed only slots, the reasons of the classes it can affect
// (issue 19: scheduling proportional to what changed).
bool SlotsCountInWaitReason(const WaitAgent& agent, const ReadyTask& task);

}  // namespace musafarm::coordinator
