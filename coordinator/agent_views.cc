#include "coordinator/agent_views.h"

#include <algorithm>

#include "coordinator/host_health.h"

namespace musafarm::coordinator {

AgentViews::View& AgentViews::Of(Agent* agent) {
  auto [it, added] = by_agent_.try_emplace(agent, nullptr);
  if (!added) return *it->second;
  View& v = views_.emplace_back();
  it->second = &v;
  v.labels.assign(agent->info.labels().begin(), agent->info.labels().end());
  v.kinds = AvailableKinds(agent->info);
  v.used_gpus = agent->used_gpus();
  v.slots = AgentSlots{&v.labels, agent->free_slots(), agent->accepting(), &v.kinds};
  v.slots.free_gpus = std::max(0, agent->info.gpus() - static_cast<int>(v.used_gpus.size()));
  v.slots.grants = &agent->grants;
  v.slots.trusted_labels = &agent->trusted_labels;
  return v;
}

std::vector<AgentSlots*> AgentViews::SlotsOf(const std::vector<Agent*>& agents) {
  std::vector<AgentSlots*> out;
  out.reserve(agents.size());
  for (Agent* a : agents) out.push_back(&Slots(a));
  return out;
}

std::vector<WaitAgent> AgentViews::ForWaitReason(const std::vector<Agent*>& agents) {
  std::vector<WaitAgent> out;
  out.reserve(agents.size());
  for (Agent* a : agents) out.push_back(WaitAgent{&a->info, a->connected(), Slots(a)});
  return out;
}

}  // namespace musafarm::coordinator
