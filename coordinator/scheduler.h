#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/agent_policy.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// What placement needs to know of an agent.
struct AgentSlots {
  const std::vector<std::string>* labels = nullptr;
  int free_slots = 0;
  bool accepting = false;  // connected and not draining
  // Stage kinds it runs; null or empty: exec only.
  const std::vector<v1::StageKind>* executors = nullptr;
  int free_gpus = 0;  // GPUs not given to a running task
  // What the agent policy lets it run; null: anything (no policy).
  const Grants* grants = nullptr;
  // Its labels that the policy trusts: only these satisfy the labels of a
  // stage that needs trust. Null: every declared label counts (no policy).
  const std::vector<std::string>* trusted_labels = nullptr;
};

// What placement needs to know of a ready task.
struct ReadyTask {
  const std::vector<std::string>* labels = nullptr;  // required labels
  v1::StageKind kind = v1::STAGE_KIND_EXEC;          // its stage kind
  int gpus = 0;                                      // GPUs it needs
  TrustNeeds needs;                                  // secrets, privilege, mounts, shell
  // Agents (indices) that ran its dependencies: their image and build caches
  // are warm for it (a dev build finds its base image locally).
  std::vector<size_t> warm_agents;
};

// Whether `agent` can take `task` now: accepting, a free slot, enough free
// GPUs, runs the task's stage kind, the policy grants the kind and what the
// task needs, and its labels satisfy the task's (only its trusted labels when
// the task needs trust).
bool Fits(const AgentSlots& agent, const ReadyTask& task);

// The agent `task` goes to among `agents`, by the preferences below, or
// agents.size() when none fits. Pure.
size_t BestAgent(const ReadyTask& task, const std::vector<AgentSlots>& agents);
// The same over views held elsewhere (a pass's AgentViews).
size_t BestAgent(const ReadyTask& task, const std::vector<AgentSlots*>& agents);

// Places ready tasks, in the order given (the queue order: oldest job first),
// onto agents that Fit it. Among fitting agents it prefers a warm
// one (cache locality), then the one with the most free slots, so independent
// tasks spread over the farm and run at the same time; ties go to the lower
// index. A task no agent fits now stays queued; later tasks may still be placed
// (no head-of-line blocking: a task waiting for GPUs does not hold back one that
// needs none). Returns (task index, agent index) pairs. Pure: the caller applies them.
std::vector<std::pair<size_t, size_t>> PlaceTasks(const std::vector<ReadyTask>& tasks,
                                                  std::vector<AgentSlots> agents);

}  // namespace musafarm::coordinator
