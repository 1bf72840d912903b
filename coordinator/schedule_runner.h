#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/core.h"
#include "coordinator/cron.h"
#include "coordinator/retention_hooks.h"
#include "coordinator/schedule_api.h"
#include "coordinator/schedule_store.h"

namespace musafarm::coordinator {

// Fires the coordinator's schedules (issue 14). One object for all of them,
// on the core loop: Tick() (the coordinator calls it every second; tests call
// it with a fake clock) submits every schedule whose next slot has come, so no
// schedule has a thread or timer of its own.
//
// Each slot fires at most once: the run record and the schedule's new fire
// times commit in the transaction of the run's job (Core::SubmitScheduled), or
// alone when nothing was submitted. Slots missed while the coordinator was
// down collapse into one run after it starts ("missed"), for the latest of
// them. Paused schedules do not fire; resuming starts from the next slot.
// Overlap: when the previous run is still going, skip records the slot as
// skipped; queue submits anyway.
//
// It also keeps each schedule's last kPinnedRuns jobs from retention, so the
// nightly diff always has the previous run. NOT thread-safe: core loop only.
class ScheduleRunner final : public ScheduleApi, public RetentionPins {
 public:
  static constexpr int kPinnedRuns = 2;

  // None owned; all outlive the runner.
  ScheduleRunner(Core* core, ScheduleStore* store, const Clock* clock)
      : core_(core), store_(store), clock_(clock) {}

  // Reads the schedules from the store (after Core::Recover). Fires nothing:
  // the first Tick does.
  absl::Status Load();
  // Fires every schedule that is due.
  void Tick();

  absl::StatusOr<v1::Schedule> AddSchedule(const v1::AddScheduleRequest& request,
                                           const std::string& created_by) override;
  absl::StatusOr<std::vector<v1::Schedule>> ListSchedules() override;
  absl::StatusOr<v1::Schedule> GetSchedule(const std::string& name, int runs) override;
  absl::StatusOr<v1::Schedule> RemoveSchedule(const std::string& name) override;
  absl::StatusOr<v1::Schedule> PauseSchedule(const std::string& name, bool pause) override;
  absl::StatusOr<v1::ScheduleRun> RunSchedule(const std::string& name) override;

  std::set<std::string> PinnedJobs() override;

 private:
  struct Entry {
    v1::Schedule schedule;  // as stored: no runs
    CronSchedule cron;
    std::string last_job_id;  // of its newest run that submitted one
  };

  // Acts on `slot` of `entry`: submits a run, or records it skipped or
  // refused. `advance`: the schedule's last and next fire times move on.
  v1::ScheduleRun Fire(Entry& entry, absl::Time slot, const std::string& trigger, bool advance);
  // `run` with its job's state and test counts.
  void FillResult(v1::ScheduleRun& run) const;
  Entry* Find(const std::string& name);

  Core* const core_;
  ScheduleStore* const store_;
  const Clock* const clock_;
  std::map<std::string, Entry> entries_;
};

// Timestamp <-> absl::Time for schedules (unset: InfinitePast).
absl::Time TimeOf(const google::protobuf::Timestamp& t);
void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out);

}  // namespace musafarm::coordinator
