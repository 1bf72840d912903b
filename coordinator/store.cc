#include "coordinator/store.h"

#include "absl/strings/str_cat.h"

namespace musafarm::coordinator {

absl::Status ValidateMutation(const Mutation& m) {
  for (const v1::Job& job : m.jobs) {
    if (job.id().empty()) return absl::InvalidArgumentError("store: job with an empty id");
  }
  for (const v1::Task& task : m.tasks) {
    if (task.id().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("store: task with an empty id in job ", task.job_id()));
    }
    if (task.job_id().empty()) {
      return absl::InvalidArgumentError(absl::StrCat("store: task ", task.id(), " has no job id"));
    }
  }
  for (const Transition& t : m.transitions) {
    if (t.task_id.empty()) {
      return absl::InvalidArgumentError("store: transition with an empty task id");
    }
  }
  for (const v1::Agent& agent : m.agents) {
    if (agent.name().empty()) return absl::InvalidArgumentError("store: agent with an empty name");
  }
  return absl::OkStatus();
}

}  // namespace musafarm::coordinator
