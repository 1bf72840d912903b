#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/store.h"
#include "musafarm/v1/agent_service.pb.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// What happens to a task. Agent reports (kStart, kResult, kHandBack) carry the
// attempt they are about and are fenced against the task's current attempt.
enum class TaskEvent {
  kReady,     // every dependency succeeded
  kSkip,      // a dependency failed, was cancelled or skipped
  kAssign,    // placed on an agent: a new attempt
  kStart,     // the agent started the attempt
  kResult,    // the agent reported how the attempt ended
  kLose,      // the agent went away with the attempt (or came back without it)
  kHandBack,  // the agent gave the attempt back unstarted or unfinished (not the task's fault)
  kCancel,    // the user cancelled it and no agent needs asking
};
inline constexpr TaskEvent kAllTaskEvents[] = {
    TaskEvent::kReady, TaskEvent::kSkip,     TaskEvent::kAssign, TaskEvent::kStart,
    TaskEvent::kResult, TaskEvent::kLose, TaskEvent::kHandBack, TaskEvent::kCancel};
const char* TaskEventName(TaskEvent e);

// One event with what the machine needs to decide where it leads.
struct TaskEventArgs {
  TaskEvent event = TaskEvent::kReady;
  // kStart, kResult, kHandBack: the attempt reported on; must be the current one.
  // kAssign: the new attempt's id.
  uint64_t attempt_id = 0;
  const v1::AttemptResult* result = nullptr;  // kResult: required
  // kAssign: the agent; kLose, kHandBack: who lost or gave it back.
  std::string agent;
  std::string detail;  // kLose, kHandBack: why; kSkip: which dependency ended how
  // kStart, and kResult of an attempt not yet RUNNING: when its process
  // started, unix microseconds on the coordinator's clock; 0: now.
  int64_t started_us = 0;
};

// The task state machine. Pure: it reads and writes only the task it is given.
//
//   (submit) --> PENDING --1 ready--> QUEUED --3 assign--> ASSIGNED --4 start--> RUNNING
//                  |                   ^  ^                   |  |                 |
//                  2 skip              |  +--5 result: retry--+--|-----------------+
//                  v                   |  +--6 lose / 7 hand back (budget left)----+
//                SKIPPED               |                      |                    |
//                                      |  5 result --> SUCCEEDED | FAILED | TIMED_OUT | CANCELLED
//                                      |  6 lose, budget spent --> FAILED ("agent lost")
//   PENDING | QUEUED | ASSIGNED | RUNNING --8 cancel--> CANCELLED
//   5, 6, 7 on a task whose cancel was requested --> CANCELLED
//
// Terminal states (SUCCEEDED, FAILED, SKIPPED, CANCELLED, TIMED_OUT) take no
// event. A result maps to a state as follows (first match wins): cancelled or
// cancel requested -> CANCELLED; timed out -> TIMED_OUT; an agent error ->
// FAILED; exit 0 with failing tests -> FAILED; exit 0 -> SUCCEEDED; else FAILED
// (signal or exit code). FAILED and TIMED_OUT become QUEUED again while the
// task's own failures (attempts less lost and handed-back ones) are within
// `retries`. Attempts lost with their agent are not the task's failures; past
// `max_lost_attempts` the task fails as "agent lost".
class TaskStateMachine {
 public:
  explicit TaskStateMachine(int max_lost_attempts) : max_lost_attempts_(max_lost_attempts) {}

  // Whether `event` may happen in state `from` (the legality table).
  static bool IsLegal(v1::TaskState from, TaskEvent event);

  // Applies `args` to `task` at `now`: checks legality and fencing, then sets
  // the state, reason and end time and the attempt bookkeeping the event
  // implies (kAssign: attempt id, agent, counters; kLose/kHandBack: their
  // counts, GPUs). Returns the transition to record. An illegal or stale event
  // returns FailedPrecondition or Aborted and leaves `task` untouched.
  absl::StatusOr<Transition> Apply(v1::Task& task, const TaskEventArgs& args,
                                   absl::Time now) const;

  // The state a result leads to, and why (see the class comment). Pure.
  static std::pair<v1::TaskState, std::string> ResultState(const v1::Task& task,
                                                           const v1::AttemptResult& result);

  // Attempts that count against the stage's `retries`.
  static int FailedAttempts(const v1::Task& task);

 private:
  const int max_lost_attempts_;
};

// Where a task that changed state leads its dependants, in order: kReady for a
// PENDING dependant whose needs have all succeeded once `ended` succeeded;
// kSkip for every PENDING task downstream of an `ended` that did not succeed.
// `dependants` maps a task id to the positions (in `job.tasks`) of the tasks
// needing it; `index` maps a task id to its position. Pure.
std::vector<std::pair<size_t, TaskEventArgs>> PropagationEvents(
    const v1::Job& job, const std::map<std::string, size_t>& index,
    const std::map<std::string, std::vector<size_t>>& dependants, const v1::Task& ended);

// The state a freshly submitted task starts in: QUEUED, or PENDING while it
// has dependencies.
v1::TaskState InitialState(const v1::Task& task);

// When an attempt's process started, on the coordinator's clock (for
// TaskEventArgs::started_us), from an agent's report that arrived at
// `arrival_us`: the arrival less (sent_us - started_us), both on the agent's
// clock, so that no two hosts' clocks are compared; never before
// `not_before_us`. 0 (the arrival, as before) when the agent gave no
// sent_us (an older agent) or the two are out of order.
int64_t StartOnCoordinatorClock(int64_t started_us, int64_t sent_us, int64_t arrival_us,
                                int64_t not_before_us);

}  // namespace musafarm::coordinator
