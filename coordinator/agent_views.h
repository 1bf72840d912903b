#pragma once

#include <cstddef>
#include <deque>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "coordinator/agent_registry.h"
#include "coordinator/scheduler.h"
#include "coordinator/wait_reason.h"

namespace musafarm::coordinator {

// The agents as one scheduling pass sees them (placement's AgentSlots, the
// GPU numbers in use), each built the first time the pass asks for it and
// changed by the pass as it places. A pass asks only for the agents that
// would run the classes it looks at, so with 10,000 agents connected it costs
// what it touches, not the farm (issue 19). Core loop only; lives for one pass.
class AgentViews {
 public:
  using Agent = AgentRegistry::Agent;

  AgentViews() = default;
  AgentViews(const AgentViews&) = delete;
  AgentViews& operator=(const AgentViews&) = delete;

  // The agent's view, built on first use. The reference stays valid for the
  // life of this object: views are never moved.
  AgentSlots& Slots(Agent* agent) { return Of(agent).slots; }
  std::set<int32_t>& UsedGpus(Agent* agent) { return Of(agent).used_gpus; }
  // Placement's view of each of `agents`, in their order.
  std::vector<AgentSlots*> SlotsOf(const std::vector<Agent*>& agents);
  // WaitReason's view of each of `agents`, in their order.
  std::vector<WaitAgent> ForWaitReason(const std::vector<Agent*>& agents);
  // How many agents have a view (SchedulerStats::agents_viewed).
  size_t size() const { return views_.size(); }

 private:
  struct View {
    std::vector<std::string> labels;
    std::vector<v1::StageKind> kinds;  // its stage kinds, less those its host cannot run now
    std::set<int32_t> used_gpus;
    AgentSlots slots;
  };
  View& Of(Agent* agent);

  std::deque<View> views_;  // a deque: growing it moves no view
  std::unordered_map<const Agent*, View*> by_agent_;
};

}  // namespace musafarm::coordinator
