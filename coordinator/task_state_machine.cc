#include "coordinator/task_state_machine.h"

#include <algorithm>
#include <set>
#include <tuple>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/peer_compat.h"
#include "common/task_state.h"

namespace musafarm::coordinator {
namespace {

// Events an agent reports about one attempt: a report about any other attempt is stale.
bool IsFenced(TaskEvent e) {
  return e == TaskEvent::kStart || e == TaskEvent::kResult || e == TaskEvent::kHandBack;
}

}  // namespace

const char* TaskEventName(TaskEvent e) {
  switch (e) {
    case TaskEvent::kReady:
      return "ready";
    case TaskEvent::kSkip:
      return "skip";
    case TaskEvent::kAssign:
      return "assign";
    case TaskEvent::kStart:
      return "start";
    case TaskEvent::kResult:
      return "result";
    case TaskEvent::kLose:
      return "lose";
    case TaskEvent::kHandBack:
      return "hand back";
    case TaskEvent::kCancel:
      return "cancel";
  }
  return "unknown";
}

bool TaskStateMachine::IsLegal(v1::TaskState from, TaskEvent event) {
  switch (event) {
    case TaskEvent::kReady:
    case TaskEvent::kSkip:
      return from == v1::TASK_STATE_PENDING;
    case TaskEvent::kAssign:
      return from == v1::TASK_STATE_QUEUED;
    case TaskEvent::kStart:
      return from == v1::TASK_STATE_ASSIGNED;
    case TaskEvent::kResult:
    case TaskEvent::kLose:
    case TaskEvent::kHandBack:
      return IsActive(from);
    case TaskEvent::kCancel:
      return from == v1::TASK_STATE_PENDING || from == v1::TASK_STATE_QUEUED || IsActive(from);
  }
  return false;
}

int TaskStateMachine::FailedAttempts(const v1::Task& task) {
  // Attempts lost with their agent or handed back are not the task's failures.
  return task.attempts() - task.lost_count() - task.handed_back_count();
}

std::pair<v1::TaskState, std::string> TaskStateMachine::ResultState(
    const v1::Task& task, const v1::AttemptResult& result) {
  const v1::TestCounts& tests = result.tests();
  const int failing_tests = tests.failed() + tests.errors();
  // The agent's outcome; for an agent from before it, the cancelled /
  // timed_out / error fields (common/peer_compat.h).
  const v1::AttemptOutcome outcome = OutcomeOf(result);
  v1::TaskState to;
  std::string reason;
  if (outcome == v1::ATTEMPT_OUTCOME_CANCELLED || task.cancel_requested_us() != 0) {
    to = v1::TASK_STATE_CANCELLED;
    reason = "cancelled by user";
  } else if (outcome == v1::ATTEMPT_OUTCOME_TIMED_OUT) {
    to = v1::TASK_STATE_TIMED_OUT;
    reason = absl::StrCat("timed out after ", task.spec().run().timeout_seconds(), "s");
  } else if (outcome == v1::ATTEMPT_OUTCOME_ERROR) {
    to = v1::TASK_STATE_FAILED;
    reason = result.error().empty() ? "the agent could not run it" : result.error();
  } else if (!result.suite_failure().empty() && (outcome == v1::ATTEMPT_OUTCOME_SUCCEEDED ||
                                                   outcome == v1::ATTEMPT_OUTCOME_FAILED)) {
    // A declared test suite failed (agent/suite_verdict.h): its reason names
    // the suite, after the process's own failure if it had one.
    to = v1::TASK_STATE_FAILED;
    reason = result.signal() != 0   ? absl::StrCat("killed by signal ", result.signal(), "; ")
             : result.exit_code() != 0 ? absl::StrCat("exit code ", result.exit_code(), "; ")
                                       : std::string();
    reason += result.suite_failure();
  } else if (outcome == v1::ATTEMPT_OUTCOME_SUCCEEDED && failing_tests > 0) {
    to = v1::TASK_STATE_FAILED;
    reason = absl::StrCat(tests.failed(), " failed, ", tests.errors(), " errors of ",
                          tests.passed() + failing_tests + tests.skipped(), " tests");
  } else if (outcome == v1::ATTEMPT_OUTCOME_SUCCEEDED) {
    to = v1::TASK_STATE_SUCCEEDED;
  } else {
    to = v1::TASK_STATE_FAILED;
    reason = result.signal() != 0 ? absl::StrCat("killed by signal ", result.signal())
                                  : absl::StrCat("exit code ", result.exit_code());
  }
  if ((to == v1::TASK_STATE_FAILED || to == v1::TASK_STATE_TIMED_OUT) &&
      FailedAttempts(task) <= task.spec().run().retries()) {
    return {v1::TASK_STATE_QUEUED,
            absl::StrCat("retrying (", FailedAttempts(task), " of ",
                         task.spec().run().retries() + 1, " attempts used) after ", reason)};
  }
  return {to, reason};
}

absl::StatusOr<Transition> TaskStateMachine::Apply(v1::Task& task, const TaskEventArgs& args,
                                                   absl::Time now) const {
  // Every check comes before the first write: a refused event changes nothing.
  if (IsFenced(args.event) && args.attempt_id != task.attempt_id()) {
    return absl::AbortedError(absl::StrCat("task ", task.id(), ": ", TaskEventName(args.event),
                                           " of stale attempt ", args.attempt_id, "; current ",
                                           task.attempt_id()));
  }
  if (!IsLegal(task.state(), args.event)) {
    return absl::FailedPreconditionError(absl::StrCat("task ", task.id(), ": ",
                                                      TaskEventName(args.event), " not allowed in ",
                                                      TaskStateName(task.state())));
  }
  if (args.event == TaskEvent::kResult && args.result == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("task ", task.id(), ": result without data"));
  }
  const bool cancel_requested = task.cancel_requested_us() != 0;
  v1::TaskState to = v1::TASK_STATE_UNSPECIFIED;
  std::string reason;
  switch (args.event) {
    case TaskEvent::kReady:
      to = v1::TASK_STATE_QUEUED;
      reason = "dependencies succeeded";
      break;
    case TaskEvent::kSkip:
      to = v1::TASK_STATE_SKIPPED;
      reason = args.detail;
      break;
    case TaskEvent::kAssign:
      to = v1::TASK_STATE_ASSIGNED;
      task.set_attempt_id(args.attempt_id);
      task.set_attempts(task.attempts() + 1);
      task.set_agent(args.agent);
      task.set_log_size(0);
      task.set_log_truncated(false);
      task.set_exit_code(0);
      task.set_started_us(0);
      task.set_ended_us(0);
      task.clear_gpu_ids();
      break;
    case TaskEvent::kStart:
      to = v1::TASK_STATE_RUNNING;
      task.set_started_us(args.started_us > 0 ? args.started_us : ToMicros(now));
      break;
    case TaskEvent::kResult:
      std::tie(to, reason) = ResultState(task, *args.result);
      if (task.started_us() == 0) {
        task.set_started_us(args.started_us > 0 ? args.started_us : ToMicros(now));
      }
      break;
    case TaskEvent::kLose: {
      task.set_lost_count(task.lost_count() + 1);
      task.clear_gpu_ids();
      const std::string why = absl::StrCat("agent ", task.agent(), ": ", args.detail);
      if (cancel_requested) {
        to = v1::TASK_STATE_CANCELLED;
        reason = absl::StrCat("cancelled by user; ", why);
      } else if (task.lost_count() > max_lost_attempts_) {
        to = v1::TASK_STATE_FAILED;
        reason = absl::StrCat("agent lost: ", why);
      } else {
        to = v1::TASK_STATE_QUEUED;
        reason = absl::StrCat("re-queued: ", why);
      }
      break;
    }
    case TaskEvent::kHandBack:
      if (cancel_requested) {
        to = v1::TASK_STATE_CANCELLED;
        reason = absl::StrCat("cancelled by user; ", args.detail);
      } else {
        // Not the task's fault and not a crash: neither retries nor the
        // lost-agent budget are used up.
        task.set_handed_back_count(task.handed_back_count() + 1);
        task.clear_gpu_ids();
        to = v1::TASK_STATE_QUEUED;
        reason = absl::StrCat("re-queued: ", args.detail);
      }
      break;
    case TaskEvent::kCancel:
      to = v1::TASK_STATE_CANCELLED;
      reason = args.detail.empty() ? "cancelled by user" : args.detail;
      break;
  }
  Transition t;
  t.task_id = task.id();
  t.attempt_id = task.attempt_id();
  t.from = task.state();
  t.to = to;
  t.at_us = ToMicros(now);
  t.reason = reason;
  task.set_state(to);
  task.set_reason(std::move(reason));
  if (IsTerminal(to)) task.set_ended_us(t.at_us);
  return t;
}

std::vector<std::pair<size_t, TaskEventArgs>> PropagationEvents(
    const v1::Job& job, const std::map<std::string, size_t>& index,
    const std::map<std::string, std::vector<size_t>>& dependants, const v1::Task& ended) {
  std::vector<std::pair<size_t, TaskEventArgs>> out;
  auto needing = [&](const std::string& id) -> const std::vector<size_t>* {
    auto it = dependants.find(id);
    return it == dependants.end() ? nullptr : &it->second;
  };
  if (ended.state() == v1::TASK_STATE_SUCCEEDED) {
    const std::vector<size_t>* deps = needing(ended.id());
    if (deps == nullptr) return out;
    for (size_t i : *deps) {
      const v1::Task& dep = job.tasks(static_cast<int>(i));
      if (dep.state() != v1::TASK_STATE_PENDING) continue;
      bool ready = true;
      for (const std::string& need : dep.spec().needs()) {
        auto n = index.find(need);
        ready = ready && n != index.end() &&
                job.tasks(static_cast<int>(n->second)).state() == v1::TASK_STATE_SUCCEEDED;
      }
      if (ready) out.emplace_back(i, TaskEventArgs{TaskEvent::kReady, 0, nullptr, "", ""});
    }
  } else if (IsTerminal(ended.state())) {
    const std::string reason = ended.state() == v1::TASK_STATE_CANCELLED
                                   ? "skipped: dependency cancelled"
                                   : "skipped: dependency failed";
    std::set<size_t> seen;
    std::vector<size_t> stack;
    if (const std::vector<size_t>* deps = needing(ended.id())) stack = *deps;
    while (!stack.empty()) {
      const size_t i = stack.back();
      stack.pop_back();
      const v1::Task& dep = job.tasks(static_cast<int>(i));
      if (dep.state() != v1::TASK_STATE_PENDING || !seen.insert(i).second) continue;
      out.emplace_back(i, TaskEventArgs{TaskEvent::kSkip, 0, nullptr, "", reason});
      if (const std::vector<size_t>* next = needing(dep.id())) {
        stack.insert(stack.end(), next->begin(), next->end());
      }
    }
  }
  return out;
}

v1::TaskState InitialState(const v1::Task& task) {
  return task.spec().needs().empty() ? v1::TASK_STATE_QUEUED : v1::TASK_STATE_PENDING;
}

int64_t StartOnCoordinatorClock(int64_t started_us, int64_t sent_us, int64_t arrival_us,
                                int64_t not_before_us) {
  if (started_us <= 0 || sent_us < started_us) return 0;
  return std::max(arrival_us - (sent_us - started_us), not_before_us);
}

}  // namespace musafarm::coordinator
