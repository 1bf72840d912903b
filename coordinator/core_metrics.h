#pragma once

// The farm's metrics (docs/architecture.md, "Dashboard and metrics", has the
// list with units): what the core does, counted as it happens, and what it
// holds, read at scrape time. Labels are states and stage names only; stage
// names are the pipeline's, so after kMaxStages distinct ones the rest count
// as "other". Not thread-safe: core loop only.

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "coordinator/metrics.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

class CoreMetrics {
 public:
  static constexpr size_t kMaxStages = 32;

  CoreMetrics();

  // A task changed state at `now` (after the change, `task` holds the new state).
  void OnTransition(const v1::Task& task, v1::TaskState from, v1::TaskState to, absl::Time now);
  // A task is known (recovery, submission) in its current state.
  void OnTaskKnown(const v1::Task& task, absl::Time now);
  void OnJobSubmitted() { registry_.Add("musafarm_jobs_submitted_total", {}); }
  void OnJobEnded(const std::string& state) { registry_.Add("musafarm_jobs_ended_total", {state}); }
  void OnCommit(absl::Duration took);
  void OnSchedulingPass(absl::Duration took);
  void OnLogBytes(uint64_t n) { registry_.Add("musafarm_log_bytes_stored_total", {}, double(n)); }

  // What the core holds now: set just before rendering.
  struct Snapshot {
    std::map<std::string, int> agents_by_state;           // "connected", ...
    std::map<std::pair<std::string, std::string>, int> tasks;  // (state, stage) -> count
    size_t watchers = 0;
    int gpus_total = 0;
    int gpus_free = 0;
  };
  std::string Render(const Snapshot& now);

  // The stage label for `task`: its stage name, or "other" past kMaxStages.
  std::string StageLabel(const v1::Task& task);
  const MetricsRegistry& registry() const { return registry_; }

 private:
  MetricsRegistry registry_;
  std::set<std::string> stages_;
  // When each task entered its current waiting state, for the histograms.
  std::map<std::string, absl::Time> queued_at_;
  std::map<std::string, absl::Time> assigned_at_;
  std::map<std::string, absl::Time> running_at_;
};

}  // namespace musafarm::coordinator
