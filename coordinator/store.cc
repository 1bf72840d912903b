#include "coordinator/store.h"

#include <iterator>
#include <utility>

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

namespace {
template <typename T>
void AppendAll(std::vector<T>& to, std::vector<T>& from) {
  if (to.empty()) {
    to = std::move(from);
    return;
  }
  to.insert(to.end(), std::make_move_iterator(from.begin()), std::make_move_iterator(from.end()));
}
}  // namespace

void AppendMutation(Mutation& to, Mutation from) {
  // Every field is a vector: a field added to Mutation changes its size, and
  // this fails to compile until it is appended below too.
  static_assert(sizeof(Mutation) == 11 * sizeof(std::vector<int>),
                "a new Mutation field must be appended by AppendMutation");
  AppendAll(to.jobs, from.jobs);
  AppendAll(to.tasks, from.tasks);
  AppendAll(to.transitions, from.transitions);
  AppendAll(to.agents, from.agents);
  AppendAll(to.job_secrets, from.job_secrets);
  AppendAll(to.drop_secrets, from.drop_secrets);
  AppendAll(to.audit, from.audit);
  AppendAll(to.schedule_fires, from.schedule_fires);
  AppendAll(to.job_webhooks, from.job_webhooks);
  AppendAll(to.drop_webhooks, from.drop_webhooks);
  AppendAll(to.deliveries, from.deliveries);
}

}  // namespace musafarm::coordinator
