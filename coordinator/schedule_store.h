#pragma once

// Where the coordinator's schedules (issue 14) are kept: with the farm's state,
// in the same store, so a run and the schedule's record of it commit together.

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "musafarm/v1/schedule_service.pb.h"

namespace musafarm::coordinator {

// One slot a schedule acted on: the schedule as it is after it (last and next
// fire time moved on) and the run it recorded. Committed in the transaction
// that stores the run's job (Mutation::schedule_fires), so a crash can never
// leave a job without its record or a record without its job: a restart
// neither fires the slot again nor forgets it fired.
struct ScheduleFire {
  v1::Schedule schedule;  // without runs
  v1::ScheduleRun run;    // job_id filled in by whoever submits the job
};

// The schedules of a store. Called only from the core loop, like Store. A
// schedule's secrets are sealed at rest by the store (as job secrets are) and
// are read back only by LoadSecrets, for submitting a run; no other read
// returns them.
class ScheduleStore {
 public:
  virtual ~ScheduleStore() = default;

  // Adds `schedule` (its `runs` ignored) with its secrets. ALREADY_EXISTS when
  // the name is taken.
  virtual absl::Status Insert(const v1::Schedule& schedule,
                              const std::map<std::string, std::string>& secrets) = 0;
  // Rewrites the schedule's row (pause, resume, fire times). NOT_FOUND when
  // there is none.
  virtual absl::Status Update(const v1::Schedule& schedule) = 0;
  // Deletes the schedule, its secrets and its runs. NOT_FOUND when there is none.
  virtual absl::Status Delete(const std::string& name) = 0;
  // Every schedule, by name, without runs.
  virtual absl::StatusOr<std::vector<v1::Schedule>> LoadAll() = 0;
  // The schedule's secret values, opened.
  virtual absl::StatusOr<std::map<std::string, std::string>> LoadSecrets(
      const std::string& name) = 0;
  // Records a slot that submitted nothing (skipped, refused) in a transaction
  // of its own. Runs with a job go through Store::Commit.
  virtual absl::Status RecordFire(const ScheduleFire& fire) = 0;
  // The schedule's newest `limit` runs, newest first (job state and tests left
  // for the caller, which knows the jobs).
  virtual absl::StatusOr<std::vector<v1::ScheduleRun>> LastRuns(const std::string& name,
                                                                int limit) = 0;
  // Up to `per_schedule` newest job ids of every schedule: what retention keeps.
  virtual absl::StatusOr<std::vector<std::string>> RecentJobIds(int per_schedule) = 0;
};

}  // namespace musafarm::coordinator
