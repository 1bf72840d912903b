#include "coordinator/task_state_machine.h"

#include <map>
#include <utility>

#include "absl/status/status.h"
#include "common/task_state.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

constexpr uint64_t kAttempt = 7;
const absl::Time kNow = absl::FromUnixSeconds(1000);

v1::Task TaskIn(v1::TaskState state) {
  v1::Task task;
  task.set_id("1/t");
  task.set_job_id("1");
  task.set_state(state);
  task.set_attempt_id(kAttempt);
  task.set_attempts(1);
  task.set_agent("h1");
  task.add_gpu_ids(0);
  return task;
}

TaskEventArgs Canonical(TaskEvent e, const v1::AttemptResult* ok_result) {
  TaskEventArgs args;
  args.event = e;
  args.attempt_id = e == TaskEvent::kAssign ? kAttempt + 1 : kAttempt;
  args.result = ok_result;
  args.agent = "h2";
  args.detail = "why";
  return args;
}

// The documented table (class comment) for a task that has retries and lost
// budget left and no cancel requested; an exit-0 result.
std::map<std::pair<v1::TaskState, TaskEvent>, v1::TaskState> LegalTable() {
  using S = v1::TaskState;
  std::map<std::pair<S, TaskEvent>, S> t;
  t[{v1::TASK_STATE_PENDING, TaskEvent::kReady}] = v1::TASK_STATE_QUEUED;
  t[{v1::TASK_STATE_PENDING, TaskEvent::kSkip}] = v1::TASK_STATE_SKIPPED;
  t[{v1::TASK_STATE_PENDING, TaskEvent::kCancel}] = v1::TASK_STATE_CANCELLED;
  t[{v1::TASK_STATE_QUEUED, TaskEvent::kAssign}] = v1::TASK_STATE_ASSIGNED;
  t[{v1::TASK_STATE_QUEUED, TaskEvent::kCancel}] = v1::TASK_STATE_CANCELLED;
  t[{v1::TASK_STATE_ASSIGNED, TaskEvent::kStart}] = v1::TASK_STATE_RUNNING;
  for (S active : {v1::TASK_STATE_ASSIGNED, v1::TASK_STATE_RUNNING}) {
    t[{active, TaskEvent::kResult}] = v1::TASK_STATE_SUCCEEDED;
    t[{active, TaskEvent::kLose}] = v1::TASK_STATE_QUEUED;
    t[{active, TaskEvent::kHandBack}] = v1::TASK_STATE_QUEUED;
    t[{active, TaskEvent::kCancel}] = v1::TASK_STATE_CANCELLED;
  }
  return t;
}

TEST(TaskStateMachineTest, EveryStateAndEventPair) {
  const TaskStateMachine machine(/*max_lost_attempts=*/2);
  v1::AttemptResult ok;
  ok.set_task_id("1/t");
  ok.set_attempt_id(kAttempt);
  const auto table = LegalTable();
  int legal = 0, refused = 0;
  for (int s = v1::TaskState_MIN; s <= v1::TaskState_MAX; ++s) {
    const auto from = static_cast<v1::TaskState>(s);
    for (TaskEvent e : kAllTaskEvents) {
      SCOPED_TRACE(testing::Message() << TaskStateName(from) << " + " << TaskEventName(e));
      v1::Task task = TaskIn(from);
      const v1::Task before = task;
      absl::StatusOr<Transition> t = machine.Apply(task, Canonical(e, &ok), kNow);
      auto want = table.find({from, e});
      EXPECT_EQ(TaskStateMachine::IsLegal(from, e), want != table.end());
      if (want == table.end()) {
        ++refused;
        ASSERT_FALSE(t.ok());
        EXPECT_TRUE(absl::IsFailedPrecondition(t.status())) << t.status();
        EXPECT_EQ(task.SerializeAsString(), before.SerializeAsString()) << "refused but changed";
        continue;
      }
      ++legal;
      ASSERT_TRUE(t.ok()) << t.status();
      EXPECT_EQ(task.state(), want->second);
      EXPECT_EQ(t->from, from);
      EXPECT_EQ(t->to, want->second);
      EXPECT_EQ(t->task_id, "1/t");
      EXPECT_EQ(t->at_us, absl::ToUnixMicros(kNow));
      EXPECT_EQ(task.reason(), t->reason);
      EXPECT_EQ(task.ended_us() != 0, IsTerminal(want->second));
    }
  }
  EXPECT_EQ(legal, static_cast<int>(table.size()));
  EXPECT_GT(refused, 0);
}

TEST(TaskStateMachineTest, StaleAttemptReportsAreFencedAndChangeNothing) {
  const TaskStateMachine machine(2);
  v1::AttemptResult ok;
  for (TaskEvent e : {TaskEvent::kStart, TaskEvent::kResult, TaskEvent::kHandBack}) {
    v1::Task task = TaskIn(e == TaskEvent::kStart ? v1::TASK_STATE_ASSIGNED
                                                  : v1::TASK_STATE_RUNNING);
    const v1::Task before = task;
    TaskEventArgs args = Canonical(e, &ok);
    args.attempt_id = kAttempt - 1;
    absl::StatusOr<Transition> t = machine.Apply(task, args, kNow);
    ASSERT_FALSE(t.ok()) << TaskEventName(e);
    EXPECT_TRUE(absl::IsAborted(t.status())) << t.status();
    EXPECT_EQ(task.SerializeAsString(), before.SerializeAsString());
  }
}

TEST(TaskStateMachineTest, AssignStartsANewAttempt) {
  const TaskStateMachine machine(2);
  v1::Task task = TaskIn(v1::TASK_STATE_QUEUED);
  task.set_exit_code(3);
  task.set_log_size(10);
  ASSERT_TRUE(machine.Apply(task, Canonical(TaskEvent::kAssign, nullptr), kNow).ok());
  EXPECT_EQ(task.attempt_id(), kAttempt + 1);
  EXPECT_EQ(task.attempts(), 2);
  EXPECT_EQ(task.agent(), "h2");
  EXPECT_EQ(task.exit_code(), 0);
  EXPECT_EQ(task.log_size(), 0u);
  EXPECT_EQ(task.gpu_ids_size(), 0);
}

// Issue 19: an agent may hold a silent attempt's Started, or skip it when the
// result comes first; the start it reports is placed on the coordinator's
// clock by the span the agent measured (sent - started), never by comparing
// the two hosts' clocks.
TEST(TaskStateMachineTest, TheStartIsTheReportsArrivalLessTheSpanTheAgentMeasured) {
  const int64_t arrival = absl::ToUnixMicros(kNow);
  // The agent's clock is a minute ahead: only the 5 ms span counts.
  const int64_t agent_start = arrival + 60'000'000;
  EXPECT_EQ(StartOnCoordinatorClock(agent_start, agent_start + 5000, arrival, 0), arrival - 5000);
  EXPECT_EQ(StartOnCoordinatorClock(agent_start, agent_start, arrival, 0), arrival);
  // Never before the bound (the task's creation).
  EXPECT_EQ(StartOnCoordinatorClock(agent_start, agent_start + 9'000'000, arrival, arrival - 1000),
            arrival - 1000);
  // An older agent (no sent_us), no start, or the two out of order: the arrival (0).
  EXPECT_EQ(StartOnCoordinatorClock(agent_start, 0, arrival, 0), 0);
  EXPECT_EQ(StartOnCoordinatorClock(0, agent_start, arrival, 0), 0);
  EXPECT_EQ(StartOnCoordinatorClock(agent_start, agent_start - 1, arrival, 0), 0);

  const TaskStateMachine machine(2);
  v1::Task running = TaskIn(v1::TASK_STATE_ASSIGNED);
  TaskEventArgs start = Canonical(TaskEvent::kStart, nullptr);
  start.started_us = arrival - 5000;
  ASSERT_TRUE(machine.Apply(running, start, kNow).ok());
  EXPECT_EQ(running.started_us(), arrival - 5000);
  start.started_us = 0;
  v1::Task now = TaskIn(v1::TASK_STATE_ASSIGNED);
  ASSERT_TRUE(machine.Apply(now, start, kNow).ok());
  EXPECT_EQ(now.started_us(), arrival);

  // A result in ASSIGNED (no Started came) starts it where it says; one after
  // a Started keeps the Started's.
  v1::AttemptResult ok;
  ok.set_attempt_id(kAttempt);
  v1::Task ended = TaskIn(v1::TASK_STATE_ASSIGNED);
  TaskEventArgs result = Canonical(TaskEvent::kResult, &ok);
  result.started_us = arrival - 3000;
  ASSERT_TRUE(machine.Apply(ended, result, kNow).ok());
  EXPECT_EQ(ended.started_us(), arrival - 3000);
  ASSERT_TRUE(machine.Apply(running, result, kNow).ok());
  EXPECT_EQ(running.started_us(), arrival - 5000);
}

struct ResultCase {
  const char* name;
  v1::AttemptResult result;
  bool cancel_requested;
  v1::TaskState want;
  std::string reason;
};

TEST(TaskStateMachineTest, ResultMapsToState) {
  std::vector<ResultCase> cases;
  auto add = [&](const char* name, auto fill, bool cancel, v1::TaskState want,
                 std::string reason) {
    v1::AttemptResult r;
    fill(r);
    cases.push_back({name, r, cancel, want, std::move(reason)});
  };
  add("exit 0", [](v1::AttemptResult&) {}, false, v1::TASK_STATE_SUCCEEDED, "");
  add("exit 2", [](v1::AttemptResult& r) { r.set_exit_code(2); }, false, v1::TASK_STATE_FAILED,
      "exit code 2");
  add("signal", [](v1::AttemptResult& r) { r.set_signal(9); }, false, v1::TASK_STATE_FAILED,
      "killed by signal 9");
  add("error", [](v1::AttemptResult& r) { r.set_error("no docker"); }, false,
      v1::TASK_STATE_FAILED, "no docker");
  add("timed out", [](v1::AttemptResult& r) { r.set_timed_out(true); }, false,
      v1::TASK_STATE_TIMED_OUT, "timed out after 30s");
  add("cancelled", [](v1::AttemptResult& r) { r.set_cancelled(true); }, false,
      v1::TASK_STATE_CANCELLED, "cancelled by user");
  add("cancel requested", [](v1::AttemptResult&) {}, true, v1::TASK_STATE_CANCELLED,
      "cancelled by user");
  add("failing tests",
      [](v1::AttemptResult& r) {
        r.mutable_tests()->set_passed(5);
        r.mutable_tests()->set_failed(2);
        r.mutable_tests()->set_errors(1);
      },
      false, v1::TASK_STATE_FAILED, "2 failed, 1 errors of 8 tests");
  for (const ResultCase& c : cases) {
    v1::Task task = TaskIn(v1::TASK_STATE_RUNNING);
    task.mutable_spec()->mutable_run()->set_timeout_seconds(30);
    if (c.cancel_requested) task.set_cancel_requested_us(1);
    auto [to, reason] = TaskStateMachine::ResultState(task, c.result);
    EXPECT_EQ(to, c.want) << c.name;
    EXPECT_EQ(reason, c.reason) << c.name;
  }
}

// A new agent's result: the outcome decides, not the old fields (which the
// case above covers for old agents). Each case sets only what a new agent
// would, plus, where noted, an old field that disagrees, to show which wins.
TEST(TaskStateMachineTest, ResultMapsToStateFromTheOutcome) {
  std::vector<ResultCase> cases;
  auto add = [&](const char* name, v1::AttemptOutcome outcome, auto fill, v1::TaskState want,
                 std::string reason) {
    v1::AttemptResult r;
    r.set_outcome(outcome);
    fill(r);
    cases.push_back({name, r, false, want, std::move(reason)});
  };
  add(
      "succeeded", v1::ATTEMPT_OUTCOME_SUCCEEDED, [](v1::AttemptResult&) {},
      v1::TASK_STATE_SUCCEEDED, "");
  add(
      "failed", v1::ATTEMPT_OUTCOME_FAILED, [](v1::AttemptResult& r) { r.set_exit_code(2); },
      v1::TASK_STATE_FAILED, "exit code 2");
  add(
      "cancelled, exit 0", v1::ATTEMPT_OUTCOME_CANCELLED, [](v1::AttemptResult&) {},
      v1::TASK_STATE_CANCELLED, "cancelled by user");
  add(
      "timed out, with an error text", v1::ATTEMPT_OUTCOME_TIMED_OUT,
      [](v1::AttemptResult& r) { r.set_error("killed at the deadline"); }, v1::TASK_STATE_TIMED_OUT,
      "timed out after 30s");
  add(
      "error", v1::ATTEMPT_OUTCOME_ERROR, [](v1::AttemptResult& r) { r.set_error("no docker"); },
      v1::TASK_STATE_FAILED, "no docker");
  add(
      "error without text", v1::ATTEMPT_OUTCOME_ERROR, [](v1::AttemptResult&) {},
      v1::TASK_STATE_FAILED, "the agent could not run it");
  add(
      "succeeded, failing tests", v1::ATTEMPT_OUTCOME_SUCCEEDED,
      [](v1::AttemptResult& r) { r.mutable_tests()->set_failed(1); }, v1::TASK_STATE_FAILED,
      "1 failed, 0 errors of 1 tests");
  // A declared suite failed (agent/suite_verdict.h): its reason, after the
  // process's own if the process failed too; a cancel still wins.
  add(
      "failed suite, exit 0", v1::ATTEMPT_OUTCOME_FAILED,
      [](v1::AttemptResult& r) { r.set_suite_failure("suite unit: exited 139"); },
      v1::TASK_STATE_FAILED, "suite unit: exited 139");
  add(
      "failed suite, exit 3", v1::ATTEMPT_OUTCOME_FAILED,
      [](v1::AttemptResult& r) {
        r.set_exit_code(3);
        r.set_suite_failure("suite unit: no exit status");
      },
      v1::TASK_STATE_FAILED, "exit code 3; suite unit: no exit status");
  add(
      "failed suite, cancelled", v1::ATTEMPT_OUTCOME_CANCELLED,
      [](v1::AttemptResult& r) { r.set_suite_failure("suite unit: exited 1"); },
      v1::TASK_STATE_CANCELLED, "cancelled by user");
  // An outcome this build does not know (a newer agent): the old fields.
  add(
      "unknown outcome", static_cast<v1::AttemptOutcome>(99),
      [](v1::AttemptResult& r) { r.set_timed_out(true); }, v1::TASK_STATE_TIMED_OUT,
      "timed out after 30s");
  for (const ResultCase& c : cases) {
    v1::Task task = TaskIn(v1::TASK_STATE_RUNNING);
    task.mutable_spec()->mutable_run()->set_timeout_seconds(30);
    auto [to, reason] = TaskStateMachine::ResultState(task, c.result);
    EXPECT_EQ(to, c.want) << c.name;
    EXPECT_EQ(reason, c.reason) << c.name;
  }
}

TEST(TaskStateMachineTest, FailuresWithinRetriesAreQueuedAgain) {
  const TaskStateMachine machine(2);
  v1::AttemptResult failed;
  failed.set_attempt_id(kAttempt);
  failed.set_exit_code(1);
  v1::Task task = TaskIn(v1::TASK_STATE_RUNNING);
  task.mutable_spec()->mutable_run()->set_retries(1);
  TaskEventArgs args = Canonical(TaskEvent::kResult, &failed);
  ASSERT_TRUE(machine.Apply(task, args, kNow).ok());
  EXPECT_EQ(task.state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(task.reason(), "retrying (1 of 2 attempts used) after exit code 1");
  // Second attempt: the budget is spent.
  task.set_state(v1::TASK_STATE_RUNNING);
  task.set_attempts(2);
  ASSERT_TRUE(machine.Apply(task, args, kNow).ok());
  EXPECT_EQ(task.state(), v1::TASK_STATE_FAILED);
}

TEST(TaskStateMachineTest, LostAttemptsQueueUntilTheBudgetIsSpent) {
  const TaskStateMachine machine(/*max_lost_attempts=*/1);
  v1::Task task = TaskIn(v1::TASK_STATE_RUNNING);
  ASSERT_TRUE(machine.Apply(task, Canonical(TaskEvent::kLose, nullptr), kNow).ok());
  EXPECT_EQ(task.state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(task.reason(), "re-queued: agent h1: why");
  EXPECT_EQ(task.lost_count(), 1);
  EXPECT_EQ(task.gpu_ids_size(), 0);
  task.set_state(v1::TASK_STATE_RUNNING);
  ASSERT_TRUE(machine.Apply(task, Canonical(TaskEvent::kLose, nullptr), kNow).ok());
  EXPECT_EQ(task.state(), v1::TASK_STATE_FAILED);
  EXPECT_EQ(task.reason(), "agent lost: agent h1: why");
}

TEST(TaskStateMachineTest, LoseAndHandBackOfACancelledTaskEndIt) {
  const TaskStateMachine machine(2);
  for (TaskEvent e : {TaskEvent::kLose, TaskEvent::kHandBack}) {
    v1::Task task = TaskIn(v1::TASK_STATE_RUNNING);
    task.set_cancel_requested_us(1);
    ASSERT_TRUE(machine.Apply(task, Canonical(e, nullptr), kNow).ok());
    EXPECT_EQ(task.state(), v1::TASK_STATE_CANCELLED) << TaskEventName(e);
    EXPECT_EQ(task.handed_back_count(), 0);
  }
}

TEST(TaskStateMachineTest, HandBackCountsApartFromFailures) {
  const TaskStateMachine machine(2);
  v1::Task task = TaskIn(v1::TASK_STATE_ASSIGNED);
  ASSERT_TRUE(machine.Apply(task, Canonical(TaskEvent::kHandBack, nullptr), kNow).ok());
  EXPECT_EQ(task.handed_back_count(), 1);
  EXPECT_EQ(task.reason(), "re-queued: why");
  EXPECT_EQ(TaskStateMachine::FailedAttempts(task), 0);
}

// a -> b -> d, a -> c -> d: the diamond.
v1::Job Diamond(std::map<std::string, size_t>& index,
                std::map<std::string, std::vector<size_t>>& dependants) {
  v1::Job job;
  const std::vector<std::pair<std::string, std::vector<std::string>>> shape = {
      {"a", {}}, {"b", {"a"}}, {"c", {"a"}}, {"d", {"b", "c"}}};
  for (const auto& [id, needs] : shape) {
    v1::Task* t = job.add_tasks();
    t->set_id(id);
    t->set_state(needs.empty() ? v1::TASK_STATE_QUEUED : v1::TASK_STATE_PENDING);
    for (const std::string& n : needs) {
      t->mutable_spec()->add_needs(n);
      dependants[n].push_back(index.size());
    }
    index[id] = index.size();
  }
  return job;
}

TEST(TaskStateMachineTest, PropagationReadiesOnlyWhenEveryNeedSucceeded) {
  std::map<std::string, size_t> index;
  std::map<std::string, std::vector<size_t>> dependants;
  v1::Job job = Diamond(index, dependants);
  job.mutable_tasks(0)->set_state(v1::TASK_STATE_SUCCEEDED);
  auto events = PropagationEvents(job, index, dependants, job.tasks(0));
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].first, 1u);
  EXPECT_EQ(events[1].first, 2u);
  EXPECT_EQ(events[0].second.event, TaskEvent::kReady);
  job.mutable_tasks(1)->set_state(v1::TASK_STATE_SUCCEEDED);
  EXPECT_TRUE(PropagationEvents(job, index, dependants, job.tasks(1)).empty());  // c not done
  job.mutable_tasks(2)->set_state(v1::TASK_STATE_SUCCEEDED);
  events = PropagationEvents(job, index, dependants, job.tasks(2));
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].first, 3u);
}

TEST(TaskStateMachineTest, PropagationSkipsEveryPendingTaskDownstreamOnce) {
  std::map<std::string, size_t> index;
  std::map<std::string, std::vector<size_t>> dependants;
  v1::Job job = Diamond(index, dependants);
  job.mutable_tasks(0)->set_state(v1::TASK_STATE_CANCELLED);
  auto events = PropagationEvents(job, index, dependants, job.tasks(0));
  std::map<size_t, int> skipped;
  for (const auto& [i, e] : events) {
    EXPECT_EQ(e.event, TaskEvent::kSkip);
    EXPECT_EQ(e.detail, "skipped: dependency cancelled");
    ++skipped[i];
  }
  EXPECT_EQ(skipped, (std::map<size_t, int>{{1, 1}, {2, 1}, {3, 1}}));
  // A retry (back to QUEUED) leads nowhere.
  job.mutable_tasks(0)->set_state(v1::TASK_STATE_QUEUED);
  EXPECT_TRUE(PropagationEvents(job, index, dependants, job.tasks(0)).empty());
}

}  // namespace
}  // namespace musafarm::coordinator
