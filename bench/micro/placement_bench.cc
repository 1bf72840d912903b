// Placement (coordinator/scheduler.h, ready_queue.h, wait_reason.h) over
// 10,000 ready tasks and 1,000 agents: what the coordinator's scheduling pass
// (Core::Schedule, coordinator/core_schedule.cc) calls, driven directly.
//
// Core::Schedule is private and needs a whole Core (store, agents, jobs), so
// BM_SchedulePassOneTaskChanged replays its steps with the same functions:
// build placement's view of every agent, take the ready queue's dirty classes,
// look at the other classes only for agents that changed, merge the candidate
// classes oldest first and place through BestAgent, then recompute the wait
// reason of every queued class. It measures the issue's "scheduling
// proportional to what changed" as the code stands; it changes nothing.
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "coordinator/ready_queue.h"
#include "coordinator/scheduler.h"
#include "coordinator/wait_reason.h"

namespace {
namespace co = musafarm::coordinator;
namespace v1 = musafarm::v1;

constexpr int kAgents = 1000;
constexpr int kTasks = 10000;
constexpr int kPools = 10;  // agents and tasks are split into label pools
constexpr int kSlotsPerAgent = 8;

std::vector<v1::Agent> MakeAgents() {
  std::vector<v1::Agent> agents;
  for (int a = 0; a < kAgents; ++a) {
    v1::Agent info;
    info.set_name(absl::StrCat("agent-", 10000 + a));  // name order = index order
    info.set_slots(kSlotsPerAgent);
    info.add_labels("os=ubuntu");
    info.add_labels(absl::StrCat("pool=p", a % kPools));
    agents.push_back(info);
  }
  return agents;
}

co::Requirement PoolRequirement(int pool) {
  co::Requirement r;
  r.labels = {absl::StrCat("pool=p", pool)};
  return r;
}

// Placement's view of the agents, rebuilt each pass from their records as
// Core's AgentViews is: labels copied out of the proto. Built once, never
// resized (slots points into labels).
struct Views {
  std::vector<std::vector<std::string>> labels;
  std::vector<co::AgentSlots> slots;
  Views(const std::vector<v1::Agent>& infos, const std::vector<int>& free) {
    labels.reserve(infos.size());
    for (const v1::Agent& a : infos) labels.emplace_back(a.labels().begin(), a.labels().end());
    for (size_t i = 0; i < infos.size(); ++i) {
      slots.push_back(co::AgentSlots{&labels[i], free[i], true, nullptr});
    }
  }
};

co::ReadyTask View(const co::Requirement& r) {
  co::ReadyTask t;
  t.labels = &r.labels;
  t.kind = r.kind;
  t.gpus = r.gpus;
  t.needs = r.needs;
  return t;
}

// PlaceTasks over 10,000 ready tasks (ten label pools) and 1,000 idle agents
// with 8 slots each: 8,000 placements, 2,000 tasks stay queued.
void BM_PlaceTasksAll(benchmark::State& state) {
  const std::vector<v1::Agent> infos = MakeAgents();
  const std::vector<int> free(kAgents, kSlotsPerAgent);
  std::vector<co::Requirement> reqs;
  for (int p = 0; p < kPools; ++p) reqs.push_back(PoolRequirement(p));
  std::vector<co::ReadyTask> tasks;
  for (int t = 0; t < kTasks; ++t) tasks.push_back(View(reqs[t % kPools]));
  size_t placed = 0;
  for (auto _ : state) {
    Views views(infos, free);
    placed = co::PlaceTasks(tasks, views.slots).size();
    benchmark::DoNotOptimize(placed);
  }
  state.counters["placed"] = static_cast<double>(placed);
  state.SetItemsProcessed(state.iterations() * kTasks);
}
BENCHMARK(BM_PlaceTasksAll)->Unit(benchmark::kMillisecond);

// One BestAgent call, the unit of a pass: one task over 1,000 agents.
void BM_BestAgent(benchmark::State& state) {
  const std::vector<v1::Agent> infos = MakeAgents();
  const std::vector<int> free(kAgents, kSlotsPerAgent);
  const co::Requirement req = PoolRequirement(3);
  const co::ReadyTask task = View(req);
  Views views(infos, free);
  for (auto _ : state) benchmark::DoNotOptimize(co::BestAgent(task, views.slots));
}
BENCHMARK(BM_BestAgent)->Unit(benchmark::kMicrosecond);

// The farm is full (every slot busy) with 10,000 tasks queued in
// state.range(0) requirement classes. Each iteration one task changed: an
// attempt on one agent finished (its slot is free, the agent is dirty) and one
// new task was queued; the pass places the oldest task that fits. With
// state.range(1) == 0 the pass skips the wait reasons, to show their share;
// 1 recomputes every class's (as Core did before issue 19); 2 only those of
// the classes whose reason counts an agent whose slots changed
// (SlotsCountInWaitReason), as Core::UpdateWaitReasons does now.
void BM_SchedulePassOneTaskChanged(benchmark::State& state) {
  const int classes = static_cast<int>(state.range(0));
  const int64_t wait_reasons = state.range(1);
  const std::vector<v1::Agent> infos = MakeAgents();
  std::vector<int> free(kAgents, 0);
  std::vector<co::Requirement> reqs;
  for (int c = 0; c < classes; ++c) {
    // Distinct classes that still fit their pool's agents: a pool and a
    // combination of trust needs (no agent policy here, so any agent grants).
    co::Requirement r = PoolRequirement(c % kPools);
    const int needs = c / kPools;
    r.needs.shell = (needs & 1) != 0;
    r.needs.privileged = (needs & 2) != 0;
    r.needs.host_mounts = (needs & 4) != 0;
    r.needs.secrets = (needs & 8) != 0;
    reqs.push_back(r);
  }
  co::ReadyQueue ready;
  uint64_t next = 0;
  for (int t = 0; t < kTasks; ++t, ++next) {
    ready.Add(absl::StrCat("t", next), {next, 0}, reqs[t % classes]);
  }
  ready.TakeDirty();
  size_t placed = 0;
  int agent = 0;
  for (auto _ : state) {
    // What changed: one task queued, and one slot freed on an agent of its
    // pool, so each pass places one task and the queue stays at 10,000.
    const co::Requirement& added = reqs[next % classes];
    ready.Add(absl::StrCat("t", next), {next, 0}, added);
    ++next;
    const int freed = (agent * kPools + static_cast<int>(next - 1) % classes % kPools) % kAgents;
    agent = (agent + 1) % (kAgents / kPools);
    ++free[freed];
    const std::string& changed_agent = infos[freed].name();
    std::vector<size_t> slots_changed = {static_cast<size_t>(freed)};

    // The pass (Core::Schedule's steps).
    std::set<co::Requirement> candidates = ready.TakeDirty();
    Views views(infos, free);
    int total_free = 0;
    for (const co::AgentSlots& s : views.slots) total_free += s.free_slots;
    for (const auto& [req, cls] : ready.classes()) {
      if (candidates.count(req) != 0) continue;
      const co::ReadyTask view = View(req);
      for (size_t a = 0; a < infos.size(); ++a) {
        if (infos[a].name() == changed_agent && co::Fits(views.slots[a], view)) {
          candidates.insert(req);
          break;
        }
      }
    }
    while (total_free > 0 && !candidates.empty()) {
      const co::ReadyQueue::Class* oldest = nullptr;
      for (auto it = candidates.begin(); it != candidates.end();) {
        auto c = ready.classes().find(*it);
        if (c == ready.classes().end()) {
          it = candidates.erase(it);
          continue;
        }
        if (oldest == nullptr || c->second.tasks.begin()->first < oldest->tasks.begin()->first) {
          oldest = &c->second;
        }
        ++it;
      }
      if (oldest == nullptr) break;
      const size_t a = co::BestAgent(View(oldest->requirement), views.slots);
      if (a == views.slots.size()) {
        candidates.erase(oldest->requirement);
        continue;
      }
      slots_changed.push_back(a);
      --views.slots[a].free_slots;
      --free[a];
      --total_free;
      ++placed;
      ready.Remove(oldest->tasks.begin()->second);
    }
    if (wait_reasons == 0) continue;
    std::vector<co::WaitAgent> wait;
    for (size_t a = 0; a < infos.size(); ++a) wait.push_back({&infos[a], true, views.slots[a]});
    for (const auto& [req, cls] : ready.classes()) {
      const co::ReadyTask view = View(req);
      if (wait_reasons == 2 &&
          std::none_of(slots_changed.begin(), slots_changed.end(), [&](size_t a) {
            return co::SlotsCountInWaitReason(wait[a], view);
          })) {
        continue;
      }
      benchmark::DoNotOptimize(co::WaitReason(view, wait).reason);
    }
  }
  state.counters["placed_per_pass"] =
      static_cast<double>(placed) / static_cast<double>(state.iterations());
  state.counters["queued"] = static_cast<double>(ready.size());
}
// Classes at most 160 (10 pools x 16 trust combinations).
BENCHMARK(BM_SchedulePassOneTaskChanged)
    ->ArgNames({"classes", "wait_reasons"})
    ->ArgsProduct({{1, 10, 100}, {1, 2, 0}})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
