#include "coordinator/core_metrics.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "common/task_state.h"
#include "common/version.h"

namespace musafarm::coordinator {
namespace {

using Type = MetricsRegistry::Type;

// Task waits and runs span seconds to hours; dispatch and commits milliseconds.
const std::vector<double> kTaskBuckets = {1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400};
const std::vector<double> kFastBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                          0.1,    0.25,  0.5,    1,     2.5,  5,     10};

std::string StateLabel(v1::TaskState s) { return absl::AsciiStrToLower(TaskStateName(s)); }

}  // namespace

CoreMetrics::CoreMetrics() {
  registry_.Declare("musafarm_build_info", Type::kGauge,
                    "The coordinator's version and git revision; always 1.",
                    {"version", "revision"});
  registry_.Set("musafarm_build_info", {musafarm::ProjectVersion(), musafarm::GitRevision()}, 1);
  registry_.Declare("musafarm_agents", Type::kGauge, "Agents known to the coordinator, by state.",
                    {"state"});
  registry_.Declare("musafarm_gpus", Type::kGauge,
                    "GPUs of connected agents: total, and free (not held by a task).", {"kind"});
  registry_.Declare("musafarm_tasks", Type::kGauge, "Tasks by state and pipeline stage: unfinished jobs' tasks, and those of jobs that "
                    "ended since the coordinator started (finished jobs live in the store).",
                    {"state", "stage"});
  registry_.Declare("musafarm_task_transitions_total", Type::kCounter,
                    "Task state changes, by the state entered.", {"to"});
  registry_.Declare("musafarm_jobs_submitted_total", Type::kCounter, "Jobs accepted.", {});
  registry_.Add("musafarm_jobs_submitted_total", {}, 0);
  registry_.Declare("musafarm_jobs_ended_total", Type::kCounter, "Jobs ended, by final state.",
                    {"state"});
  registry_.Declare("musafarm_task_queue_wait_seconds", Type::kHistogram,
                    "Time a task waited QUEUED before an agent was assigned, by stage.", {"stage"},
                    kTaskBuckets);
  registry_.Declare("musafarm_task_duration_seconds", Type::kHistogram,
                    "Time from a task's start on an agent to its end, by stage.", {"stage"},
                    kTaskBuckets);
  registry_.Declare("musafarm_dispatch_latency_seconds", Type::kHistogram,
                    "Time from assigning a task to an agent until its process started, as the agent reports it.",
                    {}, kFastBuckets);
  registry_.Declare("musafarm_scheduling_pass_seconds", Type::kHistogram,
                    "Time one scheduling pass took.", {}, kFastBuckets);
  registry_.Declare("musafarm_store_commit_seconds", Type::kHistogram,
                    "Time to commit one state change to the store (SQLite, synchronous).", {},
                    kFastBuckets);
  registry_.Declare("musafarm_log_bytes_stored_total", Type::kCounter,
                    "Task log bytes written to the log store.", {});
  registry_.Add("musafarm_log_bytes_stored_total", {}, 0);
  registry_.Declare("musafarm_watchers", Type::kGauge,
                    "Open job watches (CLI --watch, dashboard streams).", {});
}

std::string CoreMetrics::StageLabel(const v1::Task& task) {
  const std::string& stage = task.spec().stage();
  if (stages_.count(stage) != 0) return stage;
  if (stages_.size() >= kMaxStages) return "other";
  stages_.insert(stage);
  return stage;
}

void CoreMetrics::OnTaskKnown(const v1::Task& task, absl::Time now) {
  if (task.state() == v1::TASK_STATE_QUEUED) queued_at_[task.id()] = now;
  if (task.state() == v1::TASK_STATE_ASSIGNED) assigned_at_[task.id()] = now;
  if (task.state() == v1::TASK_STATE_RUNNING) running_at_[task.id()] = now;
}

void CoreMetrics::OnTransition(const v1::Task& task, v1::TaskState from, v1::TaskState to,
                               absl::Time now) {
  registry_.Add("musafarm_task_transitions_total", {StateLabel(to)});
  const std::string& id = task.id();
  if (from == v1::TASK_STATE_QUEUED) {
    if (auto it = queued_at_.find(id); it != queued_at_.end()) {
      if (to == v1::TASK_STATE_ASSIGNED) {
        registry_.Observe("musafarm_task_queue_wait_seconds", {StageLabel(task)},
                          absl::ToDoubleSeconds(now - it->second));
      }
      queued_at_.erase(it);
    }
  }
  // When its process started, once known: the task's started_us, which the
  // core dates from the agent's report (StartOnCoordinatorClock), from a
  // Started or from a result that came without one (an agent holds a silent
  // exec task's Started for a few milliseconds and drops it when the result
  // is ready first: ASSIGNED goes straight to its end).
  const bool start_known = task.started_us() > 0;
  const absl::Time started = start_known ? absl::FromUnixMicros(task.started_us()) : now;
  if (from == v1::TASK_STATE_ASSIGNED) {
    if (auto it = assigned_at_.find(id); it != assigned_at_.end()) {
      if (to == v1::TASK_STATE_RUNNING || (IsTerminal(to) && start_known)) {
        registry_.Observe("musafarm_dispatch_latency_seconds", {},
                          absl::ToDoubleSeconds(std::max(started - it->second, absl::ZeroDuration())));
      }
      assigned_at_.erase(it);
    }
    if (IsTerminal(to) && start_known) {
      registry_.Observe("musafarm_task_duration_seconds", {StageLabel(task)},
                        absl::ToDoubleSeconds(std::max(now - started, absl::ZeroDuration())));
    }
  }
  if (from == v1::TASK_STATE_RUNNING) {
    if (auto it = running_at_.find(id); it != running_at_.end()) {
      if (IsTerminal(to)) {
        const absl::Time since = start_known ? started : it->second;
        registry_.Observe("musafarm_task_duration_seconds", {StageLabel(task)},
                          absl::ToDoubleSeconds(std::max(now - since, absl::ZeroDuration())));
      }
      running_at_.erase(it);
    }
  }
  if (to == v1::TASK_STATE_QUEUED) queued_at_[id] = now;
  if (to == v1::TASK_STATE_ASSIGNED) assigned_at_[id] = now;
  if (to == v1::TASK_STATE_RUNNING) running_at_[id] = now;
}

void CoreMetrics::OnCommit(absl::Duration took) {
  registry_.Observe("musafarm_store_commit_seconds", {}, absl::ToDoubleSeconds(took));
}

void CoreMetrics::OnSchedulingPass(absl::Duration took) {
  registry_.Observe("musafarm_scheduling_pass_seconds", {}, absl::ToDoubleSeconds(took));
}

std::string CoreMetrics::Render(const Snapshot& now) {
  registry_.ZeroGauges("musafarm_agents");
  for (const char* s : {"connected", "disconnected", "draining"}) registry_.Set("musafarm_agents", {s}, 0);
  for (const auto& [state, n] : now.agents_by_state) registry_.Set("musafarm_agents", {state}, n);
  registry_.Set("musafarm_gpus", {"total"}, now.gpus_total);
  registry_.Set("musafarm_gpus", {"free"}, now.gpus_free);
  registry_.ZeroGauges("musafarm_tasks");
  for (const auto& [key, n] : now.tasks) registry_.Set("musafarm_tasks", {key.first, key.second}, n);
  registry_.Set("musafarm_watchers", {}, static_cast<double>(now.watchers));
  return registry_.Render();
}

}  // namespace musafarm::coordinator
