// Core, part 4 of 4: the scheduling pass over the ready queue's dirty
// requirement classes, and the agent policy it applies. The orchestration is
// in core.cc; placement itself is pure, in scheduler.h.
#include "coordinator/core.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <utility>

#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/peer_compat.h"
#include "common/stage_kind.h"
#include "common/task_state.h"
#include "coordinator/agent_views.h"
#include "coordinator/host_health.h"
#include "coordinator/scheduler.h"
#include "coordinator/wait_reason.h"

namespace musafarm::coordinator {
namespace {
std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("scheduler");
  return log;
}

// When the agent policy is what keeps a task queued (some agent would fit it
// were it not for the policy) this names the agents and why at DEBUG, once
// per pass and class; Task.wait_reason says only "not granted".
void LogPolicyRefusal(const std::string& task_id, const ReadyTask& task,
                      const std::vector<AgentRegistry::Agent*>& agents,
                      const std::vector<AgentSlots*>& slots) {
  if (!Log()->should_log(spdlog::level::debug)) return;
  std::vector<std::string> refused;
  for (size_t a = 0; a < agents.size(); ++a) {
    AgentSlots unrestricted = *slots[a];
    unrestricted.grants = nullptr;
    unrestricted.trusted_labels = nullptr;
    if (!Fits(unrestricted, task)) continue;
    std::string why;
    if (!Permits(*slots[a]->grants, task.kind, task.needs, &why)) {
      refused.push_back(absl::StrCat(agents[a]->info.name(), " (not granted: ", why, ")"));
    } else {
      refused.push_back(absl::StrCat(agents[a]->info.name(), " (labels not trusted)"));
    }
  }
  if (refused.empty()) return;
  Log()->debug("task={} stays queued: the agent policy refuses {}", task_id,
               absl::StrJoin(refused, ", "));
}

// Placement's view of a requirement class.
ReadyTask ClassView(const Requirement& r) {
  ReadyTask view;
  view.labels = &r.labels;
  view.kind = r.kind;
  view.gpus = r.gpus;
  view.needs = r.needs;
  return view;
}

}  // namespace

void Core::ApplyPolicy(Agent& agent) {
  agent.grants = policy_.For(agent.info.name());
  agent.trusted_labels =
      TrustedLabels(agent.grants, {agent.info.labels().begin(), agent.info.labels().end()});
  agent.info.mutable_trusted_labels()->Assign(agent.trusted_labels.begin(),
                                              agent.trusted_labels.end());
  *agent.info.mutable_grants() = GrantsProto(agent.grants);
}

void Core::SetAgentPolicy(std::optional<AgentPolicy> policy) {
  policy_ = AgentPolicy::Effective(policy, options_.insecure);
  for (auto& [name, agent] : agents_.agents()) {
    ApplyPolicy(agent);
    dirty_agents_.insert(name);  // it may take classes it could not before
  }
  wait_reasons_stale_ = true;
  Log()->info("agent policy in force: {} rules", policy_.rule_count());
  Schedule();
}

void Core::Schedule() {
  if (grouping_) {
    schedule_due_ = true;
    return;
  }
  SchedulePass();
}

const Core::ClassAgents& Core::AgentsFor(const Requirement& req) {
  ClassAgents& entry = class_agents_[req];
  if (entry.roster == agents_.roster_version()) return entry;
  entry.roster = agents_.roster_version();
  entry.agents.clear();
  entry.none_reason.clear();
  const ReadyTask view = ClassView(req);
  for (auto& [name, agent] : agents_.agents()) {
    if (WouldRun(agent.info, agent.connected(), view)) entry.agents.push_back(&agent);
  }
  if (entry.agents.empty()) {
    // Without such agents the reason reads only what the others declared
    // and whether they are connected, never their slots.
    std::vector<WaitAgent> all;
    for (const auto& [name, agent] : agents_.agents()) {
      all.push_back(WaitAgent{&agent.info, agent.connected(), AgentSlots{}});
    }
    entry.none_reason = WaitReason(view, all).reason;
  }
  return entry;
}

void Core::SchedulePass() {
  if (shutting_down_) return;  // nothing new goes to streams that are closing
  // Nothing placement or the wait reasons read changed.
  if (!ready_.HasDirty() && dirty_agents_.empty() && !wait_reasons_stale_) return;
  std::set<Requirement> candidates = ready_.TakeDirty();
  std::set<std::string> changed_agents;
  changed_agents.swap(dirty_agents_);
  if (ready_.size() == 0) {
    wait_reasons_.clear();
    class_agents_.clear();
    wait_reasons_stale_ = false;
    return;
  }
  ++stats_.passes;
  struct Timed {  // wall time of the pass, however it returns
    CoreMetrics& m;
    absl::Time start = absl::Now();
    ~Timed() { m.OnSchedulingPass(absl::Now() - start); }
  } timed{metrics_};

  // Only the agents the pass touches get a view: those that changed, and
  // those that would run a class it looks at (AgentsFor).
  AgentViews views;
  // Agents whose free slots changed since the last pass (released) or in
  // this one (assigned): the wait reasons they can change are recomputed.
  std::set<Agent*> slots_changed;
  for (const std::string& name : changed_agents) {
    if (Agent* agent = agents_.Find(name)) slots_changed.insert(agent);
  }
  // Classes with no new task are worth a look only if an agent that changed
  // can take one of them now.
  for (const auto& [req, cls] : ready_.classes()) {
    if (candidates.count(req) != 0) continue;
    const ReadyTask view = ClassView(req);
    for (Agent* agent : slots_changed) {
      if (Fits(views.Slots(agent), view)) {
        candidates.insert(req);
        break;
      }
    }
  }

  // Oldest first across the candidate classes (a merge of their queues); a
  // class leaves the merge at its first task that fits nowhere.
  bool placed_any = false;
  std::map<Requirement, std::vector<AgentSlots*>> class_slots;  // AgentsFor's, this pass
  while (!candidates.empty()) {
    const ReadyQueue::Class* next = nullptr;
    for (auto it = candidates.begin(); it != candidates.end();) {
      auto c = ready_.classes().find(*it);
      if (c == ready_.classes().end()) {
        it = candidates.erase(it);  // emptied
        continue;
      }
      if (next == nullptr || c->second.tasks.begin()->first < next->tasks.begin()->first) {
        next = &c->second;
      }
      ++it;
    }
    if (next == nullptr) break;
    ++stats_.tasks_examined;
    v1::Task& task = *jobs_.FindTask(next->tasks.begin()->second);
    ReadyTask view = ClassView(next->requirement);
    // Only agents that would run the class can fit it (WouldRun).
    const std::vector<Agent*>& agents = AgentsFor(next->requirement).agents;
    auto [known, added] = class_slots.try_emplace(next->requirement);
    if (added) known->second = views.SlotsOf(agents);
    const std::vector<AgentSlots*>& slots = known->second;
    // Cache locality: the agents that ran this task's dependencies hold their
    // images and build cache.
    for (const std::string& need : task.spec().needs()) {
      const v1::Task* dep = jobs_.FindTask(need);
      if (dep == nullptr || dep->agent().empty()) continue;
      for (size_t a = 0; a < agents.size(); ++a) {
        if (agents[a]->info.name() == dep->agent()) view.warm_agents.push_back(a);
      }
    }
    const size_t a = BestAgent(view, slots);
    if (a == agents.size()) {
      LogPolicyRefusal(task.id(), view, agents, slots);
      candidates.erase(next->requirement);
      continue;
    }
    Agent& agent = *agents[a];
    if (!Apply(task, {TaskEvent::kAssign, next_attempt_id_++, nullptr, agent.info.name(), ""})) {
      candidates.erase(next->requirement);  // cannot happen; never loop on it
      continue;
    }
    placed_any = true;
    slots_changed.insert(&agent);
    --slots[a]->free_slots;
    slots[a]->free_gpus -= view.gpus;
    // The lowest free GPU numbers; BestAgent checked there are enough.
    std::set<int32_t>& used_gpus = views.UsedGpus(&agent);
    for (int32_t g = 0; task.gpu_ids_size() < task.spec().run().gpus() && g < agent.info.gpus();
         ++g) {
      if (used_gpus.insert(g).second) task.add_gpu_ids(g);
    }
    agents_.Hold(agent, task.id(), {task.gpu_ids().begin(), task.gpu_ids().end()});
    v1::CoordinatorMessage msg;
    v1::Assignment* as = msg.mutable_assignment();
    as->set_task_id(task.id());
    as->set_attempt_id(task.attempt_id());
    as->set_job_id(task.job_id());
    as->set_display_name(task.spec().display_name());
    *as->mutable_run() = task.spec().run();
    *as->mutable_gpu_ids() = task.gpu_ids();
    as->set_max_log_bytes(options_.max_log_bytes);  // the agent drops the rest itself
    const JobEntry& job = jobs_.JobOf(task);
    const auto& sources = task.spec().run().secret_sources();
    for (const std::string& name : task.spec().run().secrets()) {
      // A per-cell value (pipeline/cell_values.h) travels under the plain name.
      const auto source = sources.find(name);
      auto it = job.secrets.find(source != sources.end() ? source->second : name);
      if (it != job.secrets.end()) (*as->mutable_secrets())[name] = it->second;
    }
    // Persisted before it is sent (Flush): if we crash in between, the agent
    // never heard of it and re-registration re-queues it.
    SendTo(agent.info.name(), std::move(msg));
  }
  if (placed_any) Flush();
  UpdateWaitReasons(views, slots_changed);
  stats_.agents_viewed += views.size();
}

void Core::UpdateWaitReasons(AgentViews& views, const std::set<Agent*>& slots_changed) {
  // Stale: something other than free slots changed (an agent's record, the
  // policy): every class again. Otherwise only new classes and those whose
  // reason counts an agent whose slots changed (SlotsCountInWaitReason): a
  // pass costs what changed, not every class times every agent.
  const bool all = wait_reasons_stale_;
  wait_reasons_stale_ = false;
  for (auto it = wait_reasons_.begin(); it != wait_reasons_.end();) {
    it = ready_.classes().count(it->first) == 0 ? wait_reasons_.erase(it) : std::next(it);
  }
  for (auto it = class_agents_.begin(); it != class_agents_.end();) {
    it = ready_.classes().count(it->first) == 0 ? class_agents_.erase(it) : std::next(it);
  }
  for (const auto& [req, cls] : ready_.classes()) {
    const ReadyTask view = ClassView(req);
    if (!all && wait_reasons_.count(req) != 0 &&
        std::none_of(slots_changed.begin(), slots_changed.end(), [&](const Agent* a) {
          return WouldRun(a->info, a->connected(), view);
        })) {
      continue;
    }
    // Over the agents that would run it alone, WaitReason says what it says
    // over all of them (wait_reason.h).
    const ClassAgents& would = AgentsFor(req);
    std::string reason = would.agents.empty()
                             ? would.none_reason
                             : WaitReason(view, views.ForWaitReason(would.agents)).reason;
    auto [known, added] = wait_reasons_.try_emplace(req);
    // An unchanged class reason: its tasks have it already (Enqueue).
    if (!added && known->second == reason) continue;
    known->second = reason;
    for (const auto& [order, id] : cls.tasks) {
      v1::Task* task = jobs_.FindTask(id);
      if (task == nullptr || task->wait_reason() == reason) continue;
      task->set_wait_reason(reason);
      // Not a state change: nothing to store, but watchers show it.
      watchers_.PublishTask(*task);
    }
  }
}

void Core::Enqueue(v1::Task& task, ReadyQueue::Order order) {
  const Requirement req = RequirementOf(task.spec().run());
  auto known = wait_reasons_.find(req);
  task.set_wait_reason(known == wait_reasons_.end() ? "" : known->second);
  ready_.Add(task.id(), order, req);
}

std::vector<std::string> Core::SubmitWarnings(const v1::Job& job) {
  AgentViews views;
  std::vector<Agent*> all;
  for (auto& [name, agent] : agents_.agents()) all.push_back(&agent);
  const std::vector<WaitAgent> agents = views.ForWaitReason(all);
  if (std::none_of(agents.begin(), agents.end(), [](const WaitAgent& a) { return a.connected; })) {
    return {"no agent is connected: every task waits until one registers"};
  }
  std::map<Requirement, WaitVerdict> verdicts;
  std::vector<std::string> warnings;
  for (const v1::Task& task : job.tasks()) {
    if (IsTerminal(task.state())) continue;
    const Requirement req = RequirementOf(task.spec().run());
    auto it = verdicts.find(req);
    if (it == verdicts.end()) it = verdicts.emplace(req, WaitReason(ClassView(req), agents)).first;
    if (!it->second.runnable) warnings.push_back(absl::StrCat("task ", task.id(), ": ", it->second.reason));
  }
  return warnings;
}

}  // namespace musafarm::coordinator
