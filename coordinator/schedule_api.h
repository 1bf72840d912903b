#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "musafarm/v1/schedule_service.pb.h"

namespace musafarm::coordinator {

// The schedule calls (issue 14), as the coordinator answers them: the seam
// between ScheduleServiceImpl (gRPC) and ScheduleRunner, which implements it.
// Called only on the core EventLoop; must not block. Errors use the canonical
// codes, which the transport passes on unchanged. Who may call what is the
// transport's business (reads: viewers; changes: admins).
class ScheduleApi {
 public:
  virtual ~ScheduleApi() = default;

  // `created_by`: the caller, recorded in the schedule and the submitter of
  // its runs. INVALID_ARGUMENT for a bad name, cron expression, time zone or
  // pipeline; ALREADY_EXISTS when the name is taken.
  virtual absl::StatusOr<v1::Schedule> AddSchedule(const v1::AddScheduleRequest& request,
                                                   const std::string& created_by) = 0;
  // Every schedule by name, each with its last run.
  virtual absl::StatusOr<std::vector<v1::Schedule>> ListSchedules() = 0;
  // The schedule with its newest `runs` runs (0: 10), their jobs' states and
  // test counts. NOT_FOUND when there is none (so for the calls below).
  virtual absl::StatusOr<v1::Schedule> GetSchedule(const std::string& name, int runs) = 0;
  // Returns the schedule as it was. Its jobs stay.
  virtual absl::StatusOr<v1::Schedule> RemoveSchedule(const std::string& name) = 0;
  // Pause: no slot fires until resumed; resume: the next slot after now fires
  // (slots passed while paused do not).
  virtual absl::StatusOr<v1::Schedule> PauseSchedule(const std::string& name, bool pause) = 0;
  using RunDone = std::function<void(absl::StatusOr<v1::ScheduleRun>)>;
  // A run now, under the overlap policy (a skip is answered with its record,
  // not an error). `done` is called on the core loop: at once, or once the
  // schedule's git inputs are resolved (that takes git, off the loop).
  virtual void RunSchedule(const std::string& name, RunDone done) = 0;
};

}  // namespace musafarm::coordinator
