#pragma once

#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/blob_store.h"
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
//
// Inputs (issue 17): a tree uploaded at `schedule add --context NAME=DIR` is
// pinned in the blob store for the schedule (PinOwner) until it is removed,
// and every run builds that tree. A git input is resolved again at each run
// (the branch's head then), off the loop by the InputResolver; meanwhile the
// schedule fires nothing else, and a coordinator stopped before the run was
// submitted fires the slot again as missed. A git URL's credentials are kept
// sealed with the schedule's secrets.
class ScheduleRunner final : public ScheduleApi, public RetentionPins {
 public:
  static constexpr int kPinnedRuns = 2;

  // Resolves the git inputs of `request` off the core loop and calls `done`
  // back on the core loop with the request, those inputs resolved.
  using InputResolver = std::function<void(
      v1::SubmitRequest request, std::function<void(absl::StatusOr<v1::SubmitRequest>)> done)>;

  // None owned; all outlive the runner.
  ScheduleRunner(Core* core, ScheduleStore* store, const Clock* clock)
      : core_(core), store_(store), clock_(clock) {}

  // Reads the schedules from the store (after Core::Recover). Fires nothing:
  // the first Tick does.
  absl::Status Load();
  // The content store schedules' uploaded inputs are checked against and
  // pinned in; null: a schedule with inputs is refused. Not owned.
  void set_blob_store(BlobStore* blobs) { blobs_ = blobs; }
  // Unset: a run of a schedule with a git input is recorded as an error.
  void set_input_resolver(InputResolver resolve) { resolve_ = std::move(resolve); }
  // Whom the blob store's pins of schedule `name`'s trees belong to; no job
  // id looks like it.
  static std::string PinOwner(const std::string& name) { return "schedule:" + name; }
  // Fires every schedule that is due.
  void Tick();

  absl::StatusOr<v1::Schedule> AddSchedule(const v1::AddScheduleRequest& request,
                                           const std::string& created_by) override;
  absl::StatusOr<std::vector<v1::Schedule>> ListSchedules() override;
  absl::StatusOr<v1::Schedule> GetSchedule(const std::string& name, int runs) override;
  absl::StatusOr<v1::Schedule> RemoveSchedule(const std::string& name) override;
  absl::StatusOr<v1::Schedule> PauseSchedule(const std::string& name, bool pause) override;
  void RunSchedule(const std::string& name, RunDone done) override;

  std::set<std::string> PinnedJobs() override;

 private:
  struct Entry {
    v1::Schedule schedule;  // as stored: no runs
    CronSchedule cron;
    std::string last_job_id;  // of its newest run that submitted one
    bool resolving = false;   // a run's git inputs are being resolved
  };

  // Acts on `slot` of `entry`: submits a run (after resolving its git
  // inputs), or records it skipped or refused, then calls `done` (may be
  // null) with the run. `advance`: the schedule's last and next fire times
  // move on.
  void Fire(Entry& entry, absl::Time slot, const std::string& trigger, bool advance,
            RunDone done);
  // Submits `request` as `fire`'s run, or records why not.
  void Submit(Entry& entry, ScheduleFire fire, const v1::SubmitRequest& request,
              const RunDone& done);
  // Records `fire`'s run, which submitted nothing, with `outcome`; the
  // schedule moves on all the same, so a refused pipeline is not retried
  // every tick.
  void Record(Entry& entry, ScheduleFire& fire, std::string outcome, const RunDone& done);
  // Checks `request`'s inputs: uploaded trees complete in the blob store
  // (their roots added to `roots`), git sources well formed.
  absl::Status CheckInputs(const v1::SubmitRequest& request, std::vector<v1::Digest>* roots) const;
  // `run` with its job's state and test counts.
  void FillResult(v1::ScheduleRun& run) const;
  Entry* Find(const std::string& name);

  Core* const core_;
  ScheduleStore* const store_;
  const Clock* const clock_;
  BlobStore* blobs_ = nullptr;
  InputResolver resolve_;
  std::map<std::string, Entry> entries_;
};

// Timestamp <-> absl::Time for schedules (unset: InfinitePast).
absl::Time TimeOf(const google::protobuf::Timestamp& t);
void SetTimestamp(absl::Time t, google::protobuf::Timestamp* out);

}  // namespace musafarm::coordinator
