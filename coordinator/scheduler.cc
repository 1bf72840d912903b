#include "coordinator/scheduler.h"

#include "common/labels.h"

namespace musafarm::coordinator {
namespace {
bool IsWarm(const ReadyTask& task, size_t agent) {
  for (size_t a : task.warm_agents) {
    if (a == agent) return true;
  }
  return false;
}

bool RunsKind(const AgentSlots& agent, v1::StageKind kind) {
  if (agent.executors == nullptr || agent.executors->empty()) return kind == v1::STAGE_KIND_EXEC;
  for (v1::StageKind k : *agent.executors) {
    if (k == kind) return true;
  }
  return false;
}
}  // namespace

bool Fits(const AgentSlots& agent, const ReadyTask& task) {
  if (!agent.accepting || agent.free_slots <= 0 || agent.free_gpus < task.gpus ||
      !RunsKind(agent, task.kind)) {
    return false;
  }
  if (agent.grants != nullptr && !Permits(*agent.grants, task.kind, task.needs)) return false;
  // A declared label is only the agent's claim: it may steer ordinary stages,
  // but a stage that needs trust goes only where the policy vouches for it.
  const bool trusted_only = task.needs.any() && agent.trusted_labels != nullptr;
  return LabelsSatisfy(trusted_only ? *agent.trusted_labels : *agent.labels, *task.labels);
}

namespace {
// `at(a)` is the a-th of `n` agents.
template <typename At>
size_t BestOf(const ReadyTask& task, size_t n, At at) {
  size_t best = n;
  bool best_warm = false;
  for (size_t a = 0; a < n; ++a) {
    const AgentSlots& agent = at(a);
    if (!Fits(agent, task)) continue;
    const bool warm = IsWarm(task, a);
    if (best == n || (warm && !best_warm) ||
        (warm == best_warm && agent.free_slots > at(best).free_slots)) {
      best = a;
      best_warm = warm;
    }
  }
  return best;
}
}  // namespace

size_t BestAgent(const ReadyTask& task, const std::vector<AgentSlots>& agents) {
  return BestOf(task, agents.size(), [&](size_t a) -> const AgentSlots& { return agents[a]; });
}

size_t BestAgent(const ReadyTask& task, const std::vector<AgentSlots*>& agents) {
  return BestOf(task, agents.size(), [&](size_t a) -> const AgentSlots& { return *agents[a]; });
}

std::vector<std::pair<size_t, size_t>> PlaceTasks(const std::vector<ReadyTask>& tasks,
                                                  std::vector<AgentSlots> agents) {
  std::vector<std::pair<size_t, size_t>> placed;
  int total_free = 0;
  for (const AgentSlots& a : agents) total_free += a.accepting ? a.free_slots : 0;
  for (size_t t = 0; t < tasks.size() && total_free > 0; ++t) {
    const ReadyTask& task = tasks[t];
    const size_t best = BestAgent(task, agents);
    if (best == agents.size()) continue;
    agents[best].free_gpus -= task.gpus;
    --agents[best].free_slots;
    --total_free;
    placed.emplace_back(t, best);
  }
  return placed;
}

}  // namespace musafarm::coordinator
