// The agent's "nothing lost, nothing stuck" behaviour against a fake
// coordinator, with real host processes: the output spool and its bound,
// recovery from an earlier run's state file, graceful shutdown and hand-back,
// and the disk threshold.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent.h"
#include "agent/agent_state.h"
#include "agent/executor/exec_executor.h"
#include "common/logging.h"
#include "common/protocol_version.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "spdlog/sinks/ostream_sink.h"
#include "tests/fakes/fake_coordinator_link.h"

namespace musafarm::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using Messages = testing::FakeCoordinatorLink::Messages;

// Polls `cond` until it holds: for state outside this process's notifications
// (files, /proc).
bool Eventually(const std::function<bool()>& cond, absl::Duration timeout = absl::Seconds(20)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!cond()) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

bool ProcessGone(int64_t pid) {
  std::optional<ProcStat> st = ReadProcStat(pid);
  return !st || st->state == 'Z';
}

// Predicates over what the agent sent.
auto HasKind(v1::AgentMessage::KindCase kind, uint64_t attempt = 0) {
  return [kind, attempt](const Messages& ms) {
    for (const v1::AgentMessage& m : ms) {
      if (m.kind_case() != kind) continue;
      if (attempt == 0) return true;
      if ((m.has_started() && m.started().attempt_id() == attempt) ||
          (m.has_result() && m.result().attempt_id() == attempt) ||
          (m.has_hand_back() && m.hand_back().attempt_id() == attempt)) {
        return true;
      }
    }
    return false;
  };
}
auto HeartbeatSaying(const std::string& reason) {
  return [reason](const Messages& ms) {
    for (const v1::AgentMessage& m : ms) {
      if (m.has_heartbeat() && m.heartbeat().unavailable_reason() == reason) return true;
    }
    return false;
  };
}
uint64_t LogBytes(const Messages& ms, uint64_t attempt) {
  uint64_t end = 0;
  for (const v1::AgentMessage& m : ms) {
    if (m.has_log() && m.log().attempt_id() == attempt) {
      end = std::max<uint64_t>(end, m.log().offset() + m.log().data().size());
    }
  }
  return end;
}
std::string Log(const Messages& ms, uint64_t attempt) {
  std::string log;
  for (const v1::AgentMessage& m : ms) {
    if (!m.has_log() || m.log().attempt_id() != attempt) continue;
    const uint64_t end = m.log().offset() + m.log().data().size();
    if (m.log().offset() <= log.size() && end > log.size()) {
      log += m.log().data().substr(log.size() - m.log().offset());
    }
  }
  return log;
}
// The names in <work>/tasks, sorted.
std::vector<std::string> TaskDirs(const std::string& work) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(work + "/tasks", ec)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}
template <typename T>
const T* Find(const Messages& ms, const T& (v1::AgentMessage::*get)() const,
              bool (v1::AgentMessage::*has)() const) {
  for (const v1::AgentMessage& m : ms) {
    if ((m.*has)()) return &(m.*get)();
  }
  return nullptr;
}

// What the agent sent of `attempt` is its whole log, `total` bytes of `c`,
// in order, and then a result of exit 0 that says so.
void ExpectWholeLogAndSuccess(const Messages& ms, uint64_t attempt, uint64_t total, char c) {
  EXPECT_EQ(Log(ms, attempt), std::string(total, c));
  const v1::AttemptResult* r = Find(ms, &v1::AgentMessage::result, &v1::AgentMessage::has_result);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->log_size(), total);
  EXPECT_EQ(r->exit_code(), 0);
}

// Holds the agent's durable state writes (AgentOptions.before_durable_state_write)
// while Hold(true): to look at what the agent does meanwhile.
class DurableGate {
 public:
  // For AgentOptions.before_durable_state_write.
  std::function<void()> Hook() {
    return [this] {
      absl::MutexLock lock(&mu_);
      held_ = hold_;
      mu_.Await(absl::Condition(this, &DurableGate::Open));
      held_ = false;
    };
  }
  void Hold(bool on) {
    absl::MutexLock lock(&mu_);
    hold_ = on;
  }
  // Waits until a durable write is being held.
  bool WaitHeld() {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(this, &DurableGate::Held), absl::Seconds(20));
  }

 private:
  bool Open() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !hold_; }
  bool Held() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return held_; }
  absl::Mutex mu_;
  bool hold_ ABSL_GUARDED_BY(mu_) = false;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
};

class WatchingExecutor;

class AgentLifecycleTest : public ::testing::Test {
 protected:
  // Attempt 61 runs `first` and ends; then, while a Docker attempt's durable
  // record holds the agent's loop, 61's ack and the assignment of 63 (`next`)
  // queue up and reach the agent in one turn, as the coordinator sends them
  // (one flush). Returns once 63 has ended; `exec` notes what its spawn saw.
  void AckWithTheNextAssignment(WatchingExecutor* exec, const std::string& first,
                                const std::string& next);

  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("mf-life-", ::getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    work_ = (dir_ / "work").string();
  }
  void TearDown() override {
    agent_.reset();
    fs::remove_all(dir_);
  }

  AgentOptions Options() {
    AgentOptions o;
    o.name = "a1";
    o.slots = 2;
    o.work_dir = work_;
    o.reconnect_initial = absl::Milliseconds(20);
    o.reconnect_max = absl::Milliseconds(200);
    o.min_free_disk = 0;  // the test host's disk is not the subject here
    o.final_ack_timeout = absl::Seconds(5);
    return o;
  }
  void StartAgent(AgentOptions o) {
    agent_ = std::make_unique<Agent>(std::move(o), &coordinator_, &executor_);
    absl::Status s = agent_->Start();
    ASSERT_TRUE(s.ok()) << s;
  }
  static v1::Assignment Shell(uint64_t attempt, const std::string& script) {
    v1::Assignment a;
    a.set_task_id(absl::StrCat("1/t", attempt));
    a.set_attempt_id(attempt);
    a.set_job_id("1");
    a.mutable_run()->mutable_exec()->add_argv(script);
    a.mutable_run()->mutable_exec()->set_shell(true);
    return a;
  }
  // What an earlier agent wrote its visible state to (kAgentStateFile).
  std::string StateFile() const { return absl::StrCat(work_, "/", kAgentStateFile); }
  // The slots of the visible state (kVisibleAgentState).
  std::string VisibleSlot(int slot) const {
    return absl::StrCat(work_, "/", kVisibleAgentState, ".", slot);
  }
  // The leader pid the agent recorded for `attempt` in its state file.
  int64_t RecordedPid(uint64_t attempt) {
    int64_t pid = 0;
    Eventually([&] {
      absl::StatusOr<AgentState> st = ReadVisibleAgentState(work_);
      if (!st.ok()) return false;
      for (const RecordedAttempt& a : st->attempts()) {
        if (a.attempt_id() == attempt && !a.processes().empty()) pid = a.processes(0).pid();
      }
      return pid != 0;
    });
    return pid;
  }

  fs::path dir_;
  std::string work_;
  testing::FakeCoordinatorLink coordinator_;
  ExecExecutor executor_{ExecOptions{absl::Seconds(1), {}, ""}};
  std::unique_ptr<Agent> agent_;
};

// ---------------------------------------------------------------------------
// Spool

// What the executor reads of a pipe at once (common/subprocess.cc): a bound
// is crossed by up to that much.
constexpr uint64_t kOneRead = 1 << 20;

TEST_F(AgentLifecycleTest, OutputIsSpooledOnDiskAndAtTheBoundTheProcessBlocksInsteadOfLosingIt) {
  AgentOptions o = Options();
  o.max_spool_bytes = 256 * 1024;
  coordinator_.AckLogs(false);  // a coordinator that stores nothing for now
  StartAgent(o);
  const std::string marker = (dir_ / "wrote-everything").string();
  const uint64_t kTotal = 4 << 20;
  coordinator_.Assign(
      Shell(7, absl::StrCat("head -c ", kTotal, " /dev/zero | tr '\\0' x; touch ", marker)));
  // The spool fills up to the bound...
  ASSERT_TRUE(
      coordinator_.WaitFor([](const Messages& ms) { return LogBytes(ms, 7) >= 200 * 1024; }));
  // ...and there it stays, give or take the one read the executor makes once
  // there is room (up to 1 MiB, common/subprocess.cc): the process is not read
  // from, so it cannot finish. (Observed for a while: a missing bound would
  // have let all 4 MiB through and the marker appear at once.)
  const uint64_t bound = o.max_spool_bytes + kOneRead + 65536;
  EXPECT_FALSE(coordinator_.WaitFor(
      [&](const Messages& ms) { return LogBytes(ms, 7) > bound; }, absl::Milliseconds(700)));
  EXPECT_FALSE(fs::exists(marker));
  // The unacknowledged bytes are in the spool file, not only in memory.
  uint64_t spooled = 0;
  for (const auto& e : fs::directory_iterator(work_ + "/spool")) spooled += e.file_size();
  EXPECT_GE(spooled, 200u * 1024);
  EXPECT_LE(spooled, bound);
  // The coordinator catches up: everything arrives, in order, nothing lost.
  coordinator_.AckLogs(true, "1/t7", 7);
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 7), absl::Seconds(60)));
  ExpectWholeLogAndSuccess(coordinator_.received(), 7, kTotal, 'x');
  EXPECT_TRUE(fs::exists(marker));
  // Once stored, the spool file is gone.
  EXPECT_TRUE(Eventually([&] { return fs::is_empty(work_ + "/spool"); }));
}

// The size of the agent's spool files.
uint64_t SpoolBytes(const std::string& work) {
  uint64_t bytes = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(work + "/spool", ec)) bytes += e.file_size(ec);
  return bytes;
}
// The bound on how far a task's output may run ahead of what the
// coordinator acknowledged: the send window (which the last chunk of up to
// 1 MiB may cross), SendLead::kMax unsent and one read of the pipe.
constexpr uint64_t kAheadBound = Agent::kSendWindow + (1 << 20) + SendLead::kMax + kOneRead;

TEST_F(AgentLifecycleTest, WhileConnectedATaskWaitsForItsOutputToBeSentInsteadOfSpoolingAhead) {
  coordinator_.AckLogs(false);  // a coordinator slower than the task: it stores nothing for now
  StartAgent(Options());        // no --max-spool-bytes: SpoolBudget bounds nothing here
  const std::string marker = (dir_ / "wrote-everything").string();
  const uint64_t kTotal = 24 << 20;
  coordinator_.Assign(
      Shell(8, absl::StrCat("head -c ", kTotal, " /dev/zero | tr '\\0' y; touch ", marker)));
  // The send window goes out...
  ASSERT_TRUE(coordinator_.WaitFor(
      [](const Messages& ms) { return LogBytes(ms, 8) >= Agent::kSendWindow; }));
  // ...and then the task is read no further ahead than the bound: it cannot
  // finish, and the spool does not grow past it. (Watched for a while:
  // without the bound the spool takes all 24 MiB at once and the marker
  // appears.)
  EXPECT_FALSE(Eventually([&] { return fs::exists(marker) || SpoolBytes(work_) > kAheadBound; },
                          absl::Milliseconds(700)));
  EXPECT_LE(SpoolBytes(work_), kAheadBound);
  EXPECT_FALSE(fs::exists(marker));
  // The coordinator catches up: everything arrives, in order.
  coordinator_.AckLogs(true, "1/t8", 8);
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 8), absl::Seconds(60)));
  ExpectWholeLogAndSuccess(coordinator_.received(), 8, kTotal, 'y');
}

TEST_F(AgentLifecycleTest, AttemptsWithLogOnItsWayShareTheAgentsSendWindow) {
  coordinator_.AckLogs(false);  // the coordinator stores nothing for now
  StartAgent(Options());
  // A quiet task whose one line is not acknowledged yet: it shares the link.
  const std::string release = (dir_ / "release").string();
  coordinator_.Assign(Shell(
      10, absl::StrCat("echo quiet; while [ ! -e ", release, " ]; do sleep 0.05; done")));
  ASSERT_TRUE(coordinator_.WaitFor([](const Messages& ms) { return LogBytes(ms, 10) >= 6; }));
  const std::string marker = (dir_ / "wrote-everything").string();
  const uint64_t kTotal = 24 << 20;
  coordinator_.Assign(
      Shell(11, absl::StrCat("head -c ", kTotal, " /dev/zero | tr '\\0' w; touch ", marker)));
  // The busy task gets half the send window (its last chunk, of up to 1 MiB,
  // may cross it), not all of it: watched for a while, it sends no more.
  constexpr uint64_t kHalfWindow = Agent::kSendWindow / 2;
  ASSERT_TRUE(coordinator_.WaitFor(
      [&](const Messages& ms) { return LogBytes(ms, 11) >= kHalfWindow; }));
  EXPECT_FALSE(coordinator_.WaitFor(
      [&](const Messages& ms) { return LogBytes(ms, 11) > kHalfWindow + (1 << 20); },
      absl::Milliseconds(700)));
  EXPECT_FALSE(fs::exists(marker));
  // The coordinator catches up: both logs arrive whole, in order.
  std::ofstream(release).put('\n');
  coordinator_.AckLogs(true, "1/t10", 10);
  coordinator_.AckLogs(true, "1/t11", 11);
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 11), absl::Seconds(60)));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 10), absl::Seconds(60)));
  const Messages ms = coordinator_.received();
  EXPECT_EQ(Log(ms, 11), std::string(kTotal, 'w'));
  EXPECT_EQ(Log(ms, 10), "quiet\n");
  for (const v1::AgentMessage& m : ms) {
    if (!m.has_result()) continue;
    EXPECT_EQ(m.result().exit_code(), 0);
    EXPECT_EQ(m.result().log_size(), m.result().attempt_id() == 11 ? kTotal : 6);
  }
}

TEST_F(AgentLifecycleTest, ATaskHeldBackWhileConnectedRunsFreelyOnceTheCoordinatorIsAway) {
  AgentOptions o = Options();
  // No reconnect while the test looks: only the end of the session may
  // release the task, not the next registration.
  o.reconnect_initial = absl::Hours(1);
  o.reconnect_max = absl::Hours(1);
  o.final_ack_timeout = absl::Milliseconds(100);
  coordinator_.AckLogs(false);
  StartAgent(o);
  const std::string marker = (dir_ / "wrote-everything").string();
  const uint64_t kTotal = 24 << 20;
  coordinator_.Assign(
      Shell(9, absl::StrCat("head -c ", kTotal, " /dev/zero | tr '\\0' z; touch ", marker)));
  ASSERT_TRUE(coordinator_.WaitFor(
      [](const Messages& ms) { return LogBytes(ms, 9) >= Agent::kSendWindow; }));
  // Held back at the bound while connected (the executor waits for room).
  ASSERT_TRUE(Eventually([&] { return SpoolBytes(work_) >= Agent::kSendWindow + SendLead::kMax; }));
  EXPECT_FALSE(fs::exists(marker));
  // The coordinator goes away: nothing is sent, so nothing holds the task
  // back; the spool takes the rest and the task finishes.
  coordinator_.Disconnect();
  ASSERT_TRUE(Eventually([&] { return fs::exists(marker); }, absl::Seconds(60)))
      << "the task stalled while the coordinator was away";
  EXPECT_GE(SpoolBytes(work_), kTotal);
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<AgentState> st = ReadVisibleAgentState(work_);
    return st.ok() && st->attempts_size() == 1 && st->attempts(0).finished();
  }));
  // Back (a restarted agent, which reconnects at once, to a coordinator that
  // stored none of it): every byte arrives, in order, from the spool.
  agent_.reset();
  testing::FakeCoordinatorLink back;
  auto stop_before_back_goes = absl::MakeCleanup([&] { agent_.reset(); });
  agent_ = std::make_unique<Agent>(Options(), &back, &executor_);
  ASSERT_TRUE(agent_->Start().ok());
  ASSERT_TRUE(back.WaitFor(HasKind(v1::AgentMessage::kResult, 9), absl::Seconds(60)));
  ExpectWholeLogAndSuccess(back.received(), 9, kTotal, 'z');
}

TEST_F(AgentLifecycleTest, AnAttemptWhoseOutputCannotBeKeptFailsWithAClearError) {
  StartAgent(Options());
  // The spool directory is replaced by a file: no spool file can be made.
  fs::remove_all(work_ + "/spool");
  std::ofstream(work_ + "/spool") << "in the way";
  coordinator_.Assign(Shell(8, "echo hi"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 8)));
  const Messages ms = coordinator_.received();
  const v1::AttemptResult* r = Find(ms, &v1::AgentMessage::result, &v1::AgentMessage::has_result);
  ASSERT_NE(r, nullptr);
  EXPECT_THAT(r->error(), HasSubstr("cannot keep the output"));
  EXPECT_FALSE(r->cancelled());
  EXPECT_EQ(r->outcome(), v1::ATTEMPT_OUTCOME_ERROR);  // beside the error, for new coordinators
}

// ---------------------------------------------------------------------------
// Started (AgentOptions::started_hold, issue 19)

bool SentStarted(const Messages& ms, uint64_t attempt) {
  return HasKind(v1::AgentMessage::kStarted, attempt)(ms);
}

// A silent attempt whose result is ready within the hold sends no Started:
// its result says when it started.
TEST_F(AgentLifecycleTest, ASilentAttemptEndingWithinTheHoldSendsOnlyItsResult) {
  AgentOptions o = Options();
  o.started_hold = absl::Hours(1);
  StartAgent(o);
  const int64_t before = absl::ToUnixMicros(absl::Now());
  coordinator_.Assign(Shell(60, "true"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 60)));
  const Messages ms = coordinator_.received();
  EXPECT_FALSE(SentStarted(ms, 60));
  const v1::AttemptResult* r = Find(ms, &v1::AgentMessage::result, &v1::AgentMessage::has_result);
  ASSERT_NE(r, nullptr);
  EXPECT_GE(r->started_us(), before);
  // For the coordinator's clock: how long before the send it started.
  EXPECT_GE(r->sent_us(), r->started_us());
  EXPECT_EQ(r->exit_code(), 0);
}

// Output sends the held Started first.
TEST_F(AgentLifecycleTest, OutputSendsTheHeldStartedFirst) {
  AgentOptions o = Options();
  o.started_hold = absl::Hours(1);
  StartAgent(o);
  coordinator_.Assign(Shell(61, "echo hi; exec sleep 600"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kLog)));
  const Messages ms = coordinator_.received();
  bool started_first = false;
  for (const v1::AgentMessage& m : ms) {
    if (m.has_started() && m.started().attempt_id() == 61) started_first = true;
    if (m.has_log()) {
      EXPECT_TRUE(started_first) << "a log chunk before the Started";
      break;
    }
  }
  EXPECT_TRUE(started_first);
}

// A silent attempt that runs on sends its Started once the hold is over (the
// exec executor's reaper times it), saying how long it had run by then.
TEST_F(AgentLifecycleTest, ASilentAttemptRunningOnSendsItsStartedAfterTheHold) {
  AgentOptions o = Options();
  o.started_hold = absl::Milliseconds(20);
  StartAgent(o);
  coordinator_.Assign(Shell(62, "exec sleep 600"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kStarted, 62)));
  const Messages ms = coordinator_.received();
  EXPECT_FALSE(HasKind(v1::AgentMessage::kResult, 62)(ms));
  const v1::AttemptStarted* s =
      Find(ms, &v1::AgentMessage::started, &v1::AgentMessage::has_started);
  ASSERT_NE(s, nullptr);
  EXPECT_GE(s->sent_us() - s->started_us(), 20'000);
}

// ---------------------------------------------------------------------------
// Restart recovery

TEST_F(AgentLifecycleTest, StateFileListsTheRunningAttemptAndItsProcessGroup) {
  StartAgent(Options());
  coordinator_.Assign(Shell(9, "exec sleep 600"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kStarted, 9)));
  const int64_t pid = RecordedPid(9);
  ASSERT_GT(pid, 0);
  absl::StatusOr<AgentState> st = ReadVisibleAgentState(work_);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->agent(), "a1");
  ASSERT_EQ(st->attempts_size(), 1);
  EXPECT_EQ(st->attempts(0).task_id(), "1/t9");
  EXPECT_EQ(st->attempts(0).kind(), "exec");
  // The recorded start time is that process's.
  std::optional<ProcStat> proc = ReadProcStat(pid);
  ASSERT_TRUE(proc.has_value());
  EXPECT_EQ(st->attempts(0).processes(0).start_time(), proc->start_time);
  EXPECT_EQ(proc->pgrp, pid);
  agent_.reset();
  // Stopped for good: nothing is held any more.
  st = ReadVisibleAgentState(work_);
  ASSERT_TRUE(st.ok());
  EXPECT_THAT(st->attempts(), IsEmpty());
}

TEST_F(AgentLifecycleTest, StartKillsWhatAnEarlierRunLeftAndRegistersHoldingNothing) {
  // What a SIGKILLed agent leaves: a running process group, its state file,
  // task and spool directories.
  Child child = Spawn({"sh", "-c", "sleep 600 & exec sleep 600"}, InheritedEnv(), "");
  ASSERT_TRUE(child.error.empty()) << child.error;
  ::close(child.fd);
  std::optional<ProcStat> leader = ReadProcStat(child.pid);
  ASSERT_TRUE(leader.has_value());
  AgentState old;
  old.set_agent("a1");
  RecordedAttempt& a = *old.add_attempts();
  a.set_task_id("1/old");
  a.set_attempt_id(3);
  a.set_kind("exec");
  a.add_processes()->set_pid(child.pid);
  a.mutable_processes(0)->set_start_time(leader->start_time);
  fs::create_directories(work_ + "/tasks/1_old-3");
  fs::create_directories(work_ + "/spool");
  std::ofstream(work_ + "/spool/1_old-3.log") << "unsent";
  ASSERT_TRUE(WriteAgentStateFile(StateFile(), old).ok());
  ASSERT_EQ(LeftoverProcesses(a.processes(0)).size(), 2u);

  StartAgent(Options());
  // Done before registering: the group is gone by the time the agent is up.
  const bool gone = LeftoverProcesses(a.processes(0)).empty();
  if (!gone) ::kill(-child.pid, SIGKILL);  // not left behind by a failing test either
  EXPECT_TRUE(gone) << "the earlier run's processes still run";
  int status = 0;
  ASSERT_EQ(::waitpid(child.pid, &status, 0), child.pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_FALSE(fs::exists(work_ + "/tasks/1_old-3"));
  EXPECT_FALSE(fs::exists(work_ + "/spool/1_old-3.log"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kRegister)));
  const Messages ms = coordinator_.received();
  EXPECT_EQ(ms[0].register_().held_size(), 0) << "so the coordinator re-queues it at once";
  // Its kinds as the enum and, for old coordinators, as names (no --docker here).
  EXPECT_THAT(ms[0].register_().capabilities().executor_kinds(),
              ElementsAre(v1::STAGE_KIND_EXEC));
  EXPECT_THAT(ms[0].register_().capabilities().executors(), ElementsAre("exec"));
  EXPECT_FALSE(ms[0].register_().capabilities().shutting_down());
  absl::StatusOr<AgentState> now = ReadVisibleAgentState(work_);
  ASSERT_TRUE(now.ok());
  EXPECT_THAT(now->attempts(), IsEmpty());
  EXPECT_FALSE(fs::exists(StateFile())) << "the earlier agent's file outlived the upgrade";
}

TEST_F(AgentLifecycleTest, AFinishedAttemptWhoseResultWasNotAcknowledgedIsReportedAfterAKill) {
  AgentOptions o = Options();
  o.final_ack_timeout = absl::Milliseconds(100);
  StartAgent(o);
  const std::string gate = (dir_ / "gate").string();
  coordinator_.Assign(Shell(21, absl::StrCat("echo part1; while [ ! -e ", gate,
                                             " ]; do sleep 0.02; done; echo part2; exit 3")));
  // The first line is stored; then the coordinator stops acknowledging.
  ASSERT_TRUE(coordinator_.WaitFor([](const Messages& ms) { return Log(ms, 21) == "part1\n"; }));
  coordinator_.AckLogs(false);
  coordinator_.AckResults(false);
  std::ofstream(gate) << "go";
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 21)));
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<AgentState> st = ReadVisibleAgentState(work_);
    return st.ok() && st->attempts_size() == 1 && st->attempts(0).finished();
  }));
  // A SIGKILL now leaves the work dir as it is: a copy of it is put back
  // after the agent is gone (whatever its Stop() does to it).
  const std::string snapshot = (dir_ / "snapshot").string();
  fs::copy(work_, snapshot, fs::copy_options::recursive);
  agent_.reset();
  fs::remove_all(work_);
  fs::rename(snapshot, work_);

  const size_t before = coordinator_.received().size();
  coordinator_.AckLogs(true);
  coordinator_.AckResults(true);
  StartAgent(o);
  ASSERT_TRUE(coordinator_.WaitFor([&](const Messages& ms) {
    return HasKind(v1::AgentMessage::kResult, 21)(Messages(ms.begin() + before, ms.end()));
  }));
  const Messages all = coordinator_.received();
  const Messages ms(all.begin() + before, all.end());
  ASSERT_TRUE(ms[0].has_register_());
  ASSERT_EQ(ms[0].register_().held_size(), 1);
  EXPECT_EQ(ms[0].register_().held(0).task_id(), "1/t21");
  EXPECT_EQ(ms[0].register_().held(0).attempt_id(), 21u);
  EXPECT_TRUE(ms[0].register_().held(0).finished());
  // Exactly the bytes the coordinator lacks, then the result.
  std::vector<std::pair<uint64_t, std::string>> chunks;
  for (const v1::AgentMessage& m : ms) {
    if (m.has_log()) chunks.emplace_back(m.log().offset(), m.log().data());
  }
  EXPECT_EQ(chunks, (std::vector<std::pair<uint64_t, std::string>>{{6, "part2\n"}}));
  const v1::AttemptResult* r = Find(ms, &v1::AgentMessage::result, &v1::AgentMessage::has_result);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->task_id(), "1/t21");
  EXPECT_EQ(r->exit_code(), 3);
  EXPECT_EQ(r->log_size(), 12u);
  // Acknowledged: the kept files go, and nothing is held any more.
  EXPECT_TRUE(Eventually([&] {
    absl::StatusOr<AgentState> st = ReadVisibleAgentState(work_);
    return st.ok() && st->attempts().empty() && fs::is_empty(work_ + "/spool");
  }));
}

// Issue 19: one durable write of the state for all the attempts that finish
// in a loop turn, off the agent's loop. The result goes out once the visible
// state records it, without waiting for that write's fdatasync; the write
// still comes, result included.
TEST_F(AgentLifecycleTest, AResultGoesOutOnceTheVisibleStateRecordsItWhileTheDurableWriteRuns) {
  DurableGate gate;
  AgentOptions o = Options();
  o.final_ack_timeout = absl::Milliseconds(100);
  o.before_durable_state_write = gate.Hook();
  StartAgent(o);
  // Stopped before the gate goes, whatever fails below.
  absl::Cleanup stop = [&] {
    gate.Hold(false);
    agent_.reset();
  };
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kRegister)));
  coordinator_.AckResults(false);  // kept, so that the state files list it
  gate.Hold(true);
  coordinator_.Assign(Shell(41, "echo out; exit 5"));
  // The durable write of its record is held...
  ASSERT_TRUE(gate.WaitHeld()) << "the durable write never began";
  // ...and the result is out all the same, after its log; the visible state
  // recorded it by then.
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 41)));
  EXPECT_EQ(Log(coordinator_.received(), 41), "out\n");
  absl::StatusOr<AgentState> visible = ReadVisibleAgentState(work_);
  ASSERT_TRUE(visible.ok()) << visible.status();
  ASSERT_EQ(visible->attempts_size(), 1);
  EXPECT_TRUE(visible->attempts(0).finished());
  gate.Hold(false);
  // The durable file records it once the write is let through.
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<AgentState> d = ReadDurableAgentState(work_);
    return d.ok() && d->attempts_size() == 1 && d->attempts(0).finished();
  }));
  absl::StatusOr<AgentState> durable = ReadDurableAgentState(work_);
  ASSERT_TRUE(durable.ok()) << durable.status();
  v1::AttemptResult recorded;
  ASSERT_TRUE(recorded.ParseFromString(durable->attempts(0).result()));
  EXPECT_EQ(recorded.exit_code(), 5);
  EXPECT_EQ(recorded.log_size(), 4u);
}

// Killed (as by SIGKILL) after an attempt finished and its result went out,
// but before the durable write of its record and before the coordinator
// acknowledged it: the restarted agent reports it from the visible state
// file, which a process crash leaves whole.
TEST_F(AgentLifecycleTest, AnAgentKilledBeforeTheDurableWriteReportsTheResultFromTheVisibleState) {
  DurableGate gate;
  AgentOptions o = Options();
  o.final_ack_timeout = absl::Milliseconds(100);
  o.before_durable_state_write = gate.Hook();
  StartAgent(o);
  // Stopped before the gate goes, whatever fails below.
  absl::Cleanup stop = [&] {
    gate.Hold(false);
    agent_.reset();
  };
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kRegister)));
  coordinator_.AckResults(false);
  gate.Hold(true);
  coordinator_.Assign(Shell(44, "echo partial; exit 7"));
  ASSERT_TRUE(gate.WaitHeld());
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 44)));
  const std::string snapshot = (dir_ / "snapshot").string();
  fs::copy(work_, snapshot, fs::copy_options::recursive);
  absl::StatusOr<AgentState> durable = ReadDurableAgentState(work_);
  EXPECT_TRUE(!durable.ok() || durable->attempts_size() == 0 || !durable->attempts(0).finished())
      << "the durable write was not held";
  gate.Hold(false);
  agent_.reset();
  fs::remove_all(work_);
  fs::rename(snapshot, work_);

  const size_t before = coordinator_.received().size();
  coordinator_.AckResults(true);
  StartAgent(Options());
  ASSERT_TRUE(coordinator_.WaitFor([&](const Messages& ms) {
    return HasKind(v1::AgentMessage::kResult, 44)(Messages(ms.begin() + before, ms.end()));
  }));
  const Messages all = coordinator_.received();
  const Messages ms(all.begin() + before, all.end());
  ASSERT_TRUE(ms[0].has_register_());
  ASSERT_EQ(ms[0].register_().held_size(), 1);
  EXPECT_TRUE(ms[0].register_().held(0).finished());
  const v1::AttemptResult* r = Find(ms, &v1::AgentMessage::result, &v1::AgentMessage::has_result);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->exit_code(), 7);
  EXPECT_EQ(Log(all, 44), "partial\n");
}

// The crash window issue 19 opens: the visible state file is written without
// fsync, so a machine crash may leave it empty. A finished attempt whose
// record's durable write is done is in the durable file all the same, and is
// reported.
TEST_F(AgentLifecycleTest, AFinishedAttemptIsReportedWhenAMachineCrashEmptiedTheVisibleState) {
  AgentOptions o = Options();
  o.final_ack_timeout = absl::Milliseconds(100);
  StartAgent(o);
  coordinator_.AckResults(false);
  coordinator_.Assign(Shell(42, "echo done; exit 6"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 42)));
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<AgentState> d = ReadDurableAgentState(work_);
    return d.ok() && d->attempts_size() == 1 && d->attempts(0).finished();
  }));
  const std::string snapshot = (dir_ / "snapshot").string();
  fs::copy(work_, snapshot, fs::copy_options::recursive);
  agent_.reset();
  fs::remove_all(work_);
  fs::rename(snapshot, work_);
  // What a crash of the machine may leave of files written without fsync.
  std::ofstream(VisibleSlot(0), std::ios::trunc).close();
  std::ofstream(VisibleSlot(1), std::ios::trunc).close();

  const size_t before = coordinator_.received().size();
  coordinator_.AckResults(true);
  StartAgent(o);
  ASSERT_TRUE(coordinator_.WaitFor([&](const Messages& ms) {
    return HasKind(v1::AgentMessage::kResult, 42)(Messages(ms.begin() + before, ms.end()));
  }));
  const Messages all = coordinator_.received();
  const Messages ms(all.begin() + before, all.end());
  ASSERT_TRUE(ms[0].has_register_());
  ASSERT_EQ(ms[0].register_().held_size(), 1);
  EXPECT_EQ(ms[0].register_().held(0).attempt_id(), 42u);
  EXPECT_TRUE(ms[0].register_().held(0).finished());
  const v1::AttemptResult* r = Find(ms, &v1::AgentMessage::result, &v1::AgentMessage::has_result);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->exit_code(), 6);
}

// An exec attempt is recorded before its process starts (the state of the
// turn that assigned it is written, then it is spawned), so that a restarted
// agent process finds what it left running.
TEST_F(AgentLifecycleTest, AnAttemptIsRecordedBeforeItsProcessStarts) {
  StartAgent(Options());
  coordinator_.Assign(Shell(43, absl::StrCat("grep -qa 1/t43 ", VisibleSlot(0), " ", VisibleSlot(1),
                                             " && echo recorded || echo missing")));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 43)));
  EXPECT_EQ(Log(coordinator_.received(), 43), "recorded\n");
}

// Host processes (ExecExecutor), noting whether `watched` is a directory at
// the moment each attempt is spawned.
class WatchingExecutor final : public Executor {
 public:
  WatchingExecutor(Executor* inner, std::string watched)
      : inner_(inner), watched_(std::move(watched)) {}
  absl::StatusOr<std::unique_ptr<Execution>> Start(const v1::Assignment& assignment,
                                                   const std::string& workdir,
                                                   ExecCallbacks callbacks) override {
    {
      absl::MutexLock lock(&mu_);
      seen_[assignment.attempt_id()] = fs::is_directory(watched_);
    }
    return inner_->Start(assignment, workdir, std::move(callbacks));
  }
  // Whether `watched` was there when `attempt` was spawned; nullopt: not spawned.
  std::optional<bool> SeenAt(uint64_t attempt) {
    absl::MutexLock lock(&mu_);
    auto it = seen_.find(attempt);
    if (it == seen_.end()) return std::nullopt;
    return it->second;
  }

 private:
  Executor* const inner_;
  const std::string watched_;
  absl::Mutex mu_;
  std::map<uint64_t, bool> seen_ ABSL_GUARDED_BY(mu_);
};

// A task starts in an empty work dir of its own, even where one of its name
// was left; the dir goes once the result is stored, whether the task left
// files in it or not. A task that has printed nothing has no spool file.
TEST_F(AgentLifecycleTest, ATaskStartsInAnEmptyWorkDirThatGoesOnceItsResultIsStored) {
  StartAgent(Options());
  // Made after the start's sweep of leftovers.
  const std::string dir71 = work_ + "/tasks/1_t71-71";
  fs::create_directories(dir71);
  std::ofstream(dir71 + "/stale") << "old";
  coordinator_.Assign(Shell(71, "ls -A; touch made"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 71)));
  EXPECT_EQ(Log(coordinator_.received(), 71), "");
  // While it runs, before its first byte of output, the spool is empty.
  coordinator_.Assign(Shell(72, "ls -A ../../spool"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 72)));
  EXPECT_EQ(Log(coordinator_.received(), 72), "");
  EXPECT_TRUE(Eventually([&] {
    return !fs::exists(dir71) && !fs::exists(work_ + "/tasks/1_t72-72") &&
           TaskDirs(work_) == std::vector<std::string>{".free-0"};
  }));
}

// A work dir its task left empty, whose output reached its end, is the next
// task's (renamed: no inode made or freed per task, issue 19); one whose
// output a process that left the task's group still held when the task
// ended is not: that process may still be in it.
TEST_F(AgentLifecycleTest, AnEmptiedWorkDirIsTheNextTasksUnlessAProcessMayStillBeInIt) {
  StartAgent(Options());
  coordinator_.Assign(Shell(81, "stat -c %i ."));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 81)));
  const std::string inode = Log(coordinator_.received(), 81);
  ASSERT_FALSE(inode.empty());
  ASSERT_TRUE(Eventually([&] { return TaskDirs(work_) == std::vector<std::string>{".free-0"}; }));
  coordinator_.Assign(Shell(82, "stat -c %i .; ls -A"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 82)));
  EXPECT_EQ(Log(coordinator_.received(), 82), inode);  // the same directory, empty
  ASSERT_TRUE(Eventually([&] { return TaskDirs(work_) == std::vector<std::string>{".free-1"}; }));

  // The pooled one, then held past the task's end by a process of its own
  // session (the reaper stops reading after its 2 s drain).
  coordinator_.Assign(Shell(83,
                           "stat -c %i .; setsid sh -c 'touch ../../left; exec sleep 4' & "
                           "while [ ! -e ../../left ]; do sleep 0.01; done"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 83)));
  EXPECT_EQ(Log(coordinator_.received(), 83).substr(0, inode.size()), inode);
  EXPECT_TRUE(Eventually([&] { return TaskDirs(work_).empty(); }));
}

void AgentLifecycleTest::AckWithTheNextAssignment(WatchingExecutor* exec,
                                                  const std::string& first,
                                                  const std::string& next) {
  DurableGate gate;
  AgentOptions o = Options();
  o.slots = 4;
  o.before_durable_state_write = gate.Hook();
  // A "Docker" executor that refuses every stage: a Docker attempt's record
  // is made durable on the agent's loop before it starts, so holding that
  // write holds the loop while the two messages queue up behind it.
  agent_ = std::make_unique<Agent>(o, &coordinator_, exec, &executor_);
  ASSERT_TRUE(agent_->Start().ok());
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kRegister)));
  coordinator_.AckResults(false);
  coordinator_.Assign(Shell(61, first));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 61)));
  ASSERT_TRUE(fs::is_directory(absl::StrCat(work_, "/tasks/1_t61-61")));
  // The result goes out before its durable record is written: that write
  // done first, so that the one held below is the Docker attempt's.
  ASSERT_TRUE(Eventually([&] {
    absl::StatusOr<AgentState> d = ReadDurableAgentState(work_);
    return d.ok() && d->attempts_size() == 1 && d->attempts(0).finished();
  }));

  gate.Hold(true);
  v1::Assignment docker;
  docker.set_task_id("1/d62");
  docker.set_attempt_id(62);
  docker.set_job_id("1");
  docker.mutable_run()->mutable_docker_run()->set_image("busybox");
  coordinator_.Assign(docker);
  ASSERT_TRUE(gate.WaitHeld()) << "the Docker attempt's durable write never began";
  ASSERT_TRUE(coordinator_.AckResult("1/t61", 61));
  coordinator_.Assign(Shell(63, next));
  coordinator_.AckResults(true);
  gate.Hold(false);
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 63)));
  agent_.reset();  // before the executor and the hook's state go out of scope
}

// The coordinator sends the ack of a result and the assignment that result
// unblocked in one flush, so they reach the agent together: the new attempt
// is spawned first, and the finished one's files are removed after it.
TEST_F(AgentLifecycleTest, AnAssignmentStartsBeforeTheFilesOfTheAttemptItFollowsAreRemoved) {
  const std::string finished_dir = absl::StrCat(work_, "/tasks/1_t61-61");
  WatchingExecutor exec(&executor_, finished_dir);
  AckWithTheNextAssignment(&exec, "touch left", "true");  // left a file: removed, not pooled
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(exec.SeenAt(63), std::optional<bool>(true));
  EXPECT_TRUE(Eventually([&] { return !fs::exists(finished_dir); }));
}

// ... and where the finished attempt left its directory empty, the new
// attempt of the same turn starts in it (the pool is filled before the
// turn's starts): no mkdir while results and assignments come together.
TEST_F(AgentLifecycleTest, AnAssignmentTakesTheDirOfTheAttemptWhoseAckCameWithIt) {
  WatchingExecutor exec(&executor_, absl::StrCat(work_, "/tasks/1_t61-61"));
  AckWithTheNextAssignment(&exec, "stat -c %i .", "stat -c %i .; ls -A");
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(exec.SeenAt(63), std::optional<bool>(false));  // renamed to 63's name by then
  const std::string inode = Log(coordinator_.received(), 61);
  ASSERT_FALSE(inode.empty());
  EXPECT_EQ(Log(coordinator_.received(), 63), inode);
}

// Host processes (ExecExecutor), noting the thread each attempt is spawned on.
class ThreadNotingExecutor final : public Executor {
 public:
  explicit ThreadNotingExecutor(Executor* inner) : inner_(inner) {}
  absl::StatusOr<std::unique_ptr<Execution>> Start(const v1::Assignment& assignment,
                                                   const std::string& workdir,
                                                   ExecCallbacks callbacks) override {
    {
      absl::MutexLock lock(&mu_);
      spawned_on_[assignment.attempt_id()] = std::this_thread::get_id();
    }
    return inner_->Start(assignment, workdir, std::move(callbacks));
  }
  std::thread::id SpawnedOn(uint64_t attempt) {
    absl::MutexLock lock(&mu_);
    return spawned_on_[attempt];
  }

 private:
  Executor* const inner_;
  absl::Mutex mu_;
  std::map<uint64_t, std::thread::id> spawned_on_ ABSL_GUARDED_BY(mu_);
};

// Issue 19: over a link that allows it (the gRPC one), an exec assignment that
// finds the agent's loop idle is spawned on the thread that read it, without
// waking the loop's thread; its attempt is still recorded in the visible state
// before its process starts.
TEST_F(AgentLifecycleTest, AnAssignmentToAnIdleAgentIsSpawnedOnTheThreadThatReadIt) {
  ThreadNotingExecutor exec(&executor_);
  coordinator_.set_on_message_may_send(true);
  agent_ = std::make_unique<Agent>(Options(), &coordinator_, &exec);
  ASSERT_TRUE(agent_->Start().ok());
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kRegister)));
  // The loop may still be busy (the registration's turn, the last attempt's
  // ack and removal): the assignment is then posted to it, as before. Each
  // next one is read once the last is acknowledged and forgotten.
  auto holds_none = [&] {
    absl::StatusOr<AgentState> st = ReadVisibleAgentState(work_);
    return st.ok() && st->attempts().empty();
  };
  uint64_t here = 0;
  for (uint64_t attempt = 71; attempt < 91 && here == 0; ++attempt) {
    ASSERT_TRUE(Eventually(holds_none));
    v1::CoordinatorMessage m;
    *m.mutable_assignment() =
        Shell(attempt, absl::StrCat("grep -qa 1/t", attempt, " ", VisibleSlot(0), " ",
                                    VisibleSlot(1), " && echo recorded || echo missing"));
    ASSERT_TRUE(coordinator_.DeliverFromReader(m));
    ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, attempt)));
    if (exec.SpawnedOn(attempt) == std::this_thread::get_id()) here = attempt;
  }
  ASSERT_NE(here, 0u) << "no assignment was spawned on the thread that delivered it";
  EXPECT_EQ(Log(coordinator_.received(), here), "recorded\n");
  agent_.reset();  // before the executor goes out of scope
}

// An agent upgraded in place finds only the text state file its older build
// wrote: the attempt it records is not lost (a finished one is reported), and
// the text file is read once: replaced by the proto state.
TEST_F(AgentLifecycleTest, AnUpgradedAgentReportsWhatItsOlderBuildRecordedInTheTextStateFile) {
  fs::create_directories(work_ + "/spool");
  const std::string spool = work_ + "/spool/1_t31-31.log";
  const std::string result_path = work_ + "/spool/1_t31-31.result";
  std::ofstream(spool, std::ios::binary) << "hello\n";
  v1::AttemptResult result;
  result.set_task_id("1/t31");
  result.set_attempt_id(31);
  result.set_exit_code(4);
  result.set_log_size(6);
  std::ofstream(result_path, std::ios::binary) << result.SerializeAsString();
  std::ofstream(work_ + "/" + kLegacyAgentStateFile)
      << "musafarm-agent-state\t1\nagent\ta1\nattempt\t1/t31\t31\texec\n"
      << "finished\t" << spool << "\t0\t6\t" << result_path << "\n";

  StartAgent(Options());
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 31)));
  const Messages ms = coordinator_.received();
  ASSERT_TRUE(ms[0].has_register_());
  ASSERT_EQ(ms[0].register_().held_size(), 1);
  EXPECT_EQ(ms[0].register_().held(0).attempt_id(), 31u);
  EXPECT_TRUE(ms[0].register_().held(0).finished());
  EXPECT_EQ(Log(ms, 31), "hello\n");
  const v1::AttemptResult* r = Find(ms, &v1::AgentMessage::result, &v1::AgentMessage::has_result);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->exit_code(), 4);
  EXPECT_FALSE(fs::exists(work_ + "/" + kLegacyAgentStateFile)) << "read once";
  EXPECT_TRUE(Eventually([&] {
    absl::StatusOr<AgentState> st = ReadVisibleAgentState(work_);
    return st.ok() && st->attempts().empty();
  }));
}

// ---------------------------------------------------------------------------
// Instance secret (one agent per name)

TEST_F(AgentLifecycleTest, TheInstanceSecretIsMadeOnceAndKeptAcrossRestarts) {
  StartAgent(Options());
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kRegister)));
  const std::string secret = coordinator_.registration().instance_secret();
  EXPECT_GE(secret.size(), 16u) << "at least 128 bits";
  absl::StatusOr<AgentState> st = ReadVisibleAgentState(work_);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->instance_secret(), secret);

  agent_.reset();  // stopped; a new run on the same work dir is the same instance
  StartAgent(Options());
  ASSERT_TRUE(coordinator_.WaitFor([](const Messages& ms) {
    int registers = 0;
    for (const auto& m : ms) registers += m.has_register_() ? 1 : 0;
    return registers >= 2;
  }));
  EXPECT_EQ(coordinator_.registration().instance_secret(), secret);

  // Another work dir is another instance.
  agent_.reset();
  work_ = (dir_ / "other-work").string();
  StartAgent(Options());
  ASSERT_TRUE(coordinator_.WaitFor([](const Messages& ms) {
    int registers = 0;
    for (const auto& m : ms) registers += m.has_register_() ? 1 : 0;
    return registers >= 3;
  }));
  EXPECT_GE(coordinator_.registration().instance_secret().size(), 16u);
  EXPECT_NE(coordinator_.registration().instance_secret(), secret);
}

TEST_F(AgentLifecycleTest, AStateFileFromBeforeTheSecretGetsOne) {
  fs::create_directories(work_);
  AgentState old;  // written by an agent from before instance_secret
  old.set_agent("a1");
  ASSERT_TRUE(WriteAgentStateFile(StateFile(), old).ok());
  StartAgent(Options());
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kRegister)));
  const std::string secret = coordinator_.registration().instance_secret();
  EXPECT_GE(secret.size(), 16u);
  absl::StatusOr<AgentState> st = ReadVisibleAgentState(work_);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->instance_secret(), secret);

  // The text state file of an even older agent.
  agent_.reset();
  work_ = (dir_ / "text-work").string();
  fs::create_directories(work_);
  std::ofstream(work_ + "/" + kLegacyAgentStateFile) << "musafarm-agent-state\t1\nagent\ta1\n";
  StartAgent(Options());
  ASSERT_TRUE(coordinator_.WaitFor([](const Messages& ms) {
    int registers = 0;
    for (const auto& m : ms) registers += m.has_register_() ? 1 : 0;
    return registers >= 2;
  }));
  const std::string text_secret = coordinator_.registration().instance_secret();
  EXPECT_GE(text_secret.size(), 16u);
  EXPECT_NE(text_secret, secret);
  st = ReadVisibleAgentState(work_);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->instance_secret(), text_secret);
}

// Another instance holds the name: this one retries with its backoff and
// keeps what it runs, then takes over once the other is gone.
TEST_F(AgentLifecycleTest, AlreadyExistsIsRetriedAndTheRunningAttemptIsKept) {
  StartAgent(Options());
  const std::string marker = (dir_ / "release").string();
  coordinator_.Assign(Shell(41, absl::StrCat("echo started; while [ ! -e ", marker,
                                             " ]; do sleep 0.05; done; echo done")));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kStarted, 41)));
  coordinator_.RefuseRegistrations(absl::AlreadyExistsError(
      "agent name a1 is held by another instance connected from ipv4:127.0.0.1:1 since T"));
  coordinator_.Disconnect();
  ASSERT_TRUE(Eventually([&] { return coordinator_.refused() >= 3; })) << "retried";
  const int64_t pid = RecordedPid(41);
  ASSERT_GT(pid, 0);
  EXPECT_EQ(::kill(static_cast<pid_t>(pid), 0), 0) << "the attempt still runs";
  coordinator_.RefuseRegistrations(absl::OkStatus());  // the other instance went away
  ASSERT_TRUE(coordinator_.WaitFor([](const Messages& ms) {
    int registers = 0;
    for (const auto& m : ms) registers += m.has_register_() ? 1 : 0;
    return registers >= 2;
  }));
  const v1::Register reg = coordinator_.registration();
  ASSERT_EQ(reg.held_size(), 1);
  EXPECT_EQ(reg.held(0).attempt_id(), 41u);
  std::ofstream(marker) << "";
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 41)));
  const Messages ms = coordinator_.received();
  const v1::AttemptResult* r = Find(ms, &v1::AgentMessage::result, &v1::AgentMessage::has_result);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->exit_code(), 0);
}

// Issue 20: when a stream ends the link has already moved on (a standby's
// hint, the next --coordinator address); the log line names both.
TEST_F(AgentLifecycleTest, TheStreamEndedLineNamesTheAddressItTriesNext) {
  // The sink is added before the agent's threads start and read after they
  // end: nothing else touches it meanwhile.
  std::ostringstream out;
  auto log = GetLogger("agent");
  log->sinks().push_back(std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  coordinator_.set_target("a.example:7070");
  StartAgent(Options());
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kRegister)));
  coordinator_.set_target("b.example:7070");
  coordinator_.Disconnect();
  ASSERT_TRUE(Eventually([&] { return coordinator_.sessions_opened() >= 2; }));
  agent_.reset();
  log->sinks().pop_back();
  EXPECT_THAT(out.str(), HasSubstr("stream to a.example:7070 ended: connection lost (14); "
                                   "reconnecting to b.example:7070 in "))
      << out.str();
}

// A coordinator that cannot serve this agent's protocol (issue 16, item 2):
// no retry changes that, so the agent stops at once with the refusal, which
// its process reports before exiting non-zero.
TEST_F(AgentLifecycleTest, AProtocolRefusalStopsTheAgentInsteadOfRetrying) {
  const absl::Status why = absl::FailedPreconditionError(
      "agent protocol 2 is not supported by this coordinator (protocol 3, agents 3..3)");
  StartAgent(Options());
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kRegister)));
  EXPECT_EQ(coordinator_.registration().protocol_version(), kProtocolVersion);
  // The coordinator is replaced by one of another protocol.
  coordinator_.RefuseRegistrations(why);
  coordinator_.Disconnect();
  ASSERT_TRUE(agent_->WaitStopped(absl::Seconds(20)));
  EXPECT_EQ(agent_->refusal(), why);
  EXPECT_EQ(coordinator_.refused(), 1);
  EXPECT_EQ(coordinator_.sessions_opened(), 2);
}

TEST_F(AgentLifecycleTest, AFinishedAttemptWhoseFilesDoNotAddUpIsDroppedAsBefore) {
  AgentState old;
  old.set_agent("a1");
  RecordedAttempt& a = *old.add_attempts();
  a.set_task_id("1/old");
  a.set_attempt_id(4);
  a.set_kind("exec");
  a.set_finished(true);
  a.set_spool_path(work_ + "/spool/1_old-4.log");
  a.set_log_total(6);
  a.set_result_path(work_ + "/spool/1_old-4.result");  // missing
  fs::create_directories(work_ + "/spool");
  std::ofstream(a.spool_path()) << "unsent";
  ASSERT_TRUE(WriteAgentStateFile(StateFile(), old).ok());
  StartAgent(Options());
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kRegister)));
  EXPECT_EQ(coordinator_.received()[0].register_().held_size(), 0);
  EXPECT_FALSE(fs::exists(a.spool_path()));
  absl::StatusOr<AgentState> now = ReadVisibleAgentState(work_);
  ASSERT_TRUE(now.ok());
  EXPECT_THAT(now->attempts(), IsEmpty());
}

TEST_F(AgentLifecycleTest, TwoAgentsCannotShareAWorkDir) {
  StartAgent(Options());
  ExecExecutor other_executor{ExecOptions{}};
  Agent second(Options(), &coordinator_, &other_executor);
  absl::Status s = second.Start();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(s.message()), HasSubstr("in use by another agent"));
}

// ---------------------------------------------------------------------------
// Graceful shutdown

TEST_F(AgentLifecycleTest, ShutdownWithDrainZeroHandsBackTheRunningAttemptAndCloses) {
  AgentOptions o = Options();
  o.drain_timeout = absl::ZeroDuration();
  StartAgent(o);
  coordinator_.Assign(Shell(11, "exec sleep 600"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kStarted, 11)));
  const int64_t pid = RecordedPid(11);
  ASSERT_GT(pid, 0);
  agent_->Shutdown();
  ASSERT_TRUE(agent_->WaitStopped(absl::Seconds(20)));
  const Messages ms = coordinator_.received();
  EXPECT_TRUE(HeartbeatSaying("shutting down")(ms));
  // The field new coordinators read, beside the text old ones match.
  bool flagged = false;
  for (const v1::AgentMessage& m : ms) {
    if (m.has_heartbeat() && m.heartbeat().unavailable_reason() == "shutting down") {
      EXPECT_TRUE(m.heartbeat().shutting_down());
      flagged = true;
    }
  }
  EXPECT_TRUE(flagged);
  const v1::HandBack* hb = Find(ms, &v1::AgentMessage::hand_back, &v1::AgentMessage::has_hand_back);
  ASSERT_NE(hb, nullptr);
  EXPECT_EQ(hb->task_id(), "1/t11");
  EXPECT_EQ(hb->attempt_id(), 11u);
  EXPECT_EQ(hb->reason(), "agent shutting down: drain deadline of 0s passed");
  EXPECT_FALSE(HasKind(v1::AgentMessage::kResult)(ms)) << "handed back, not reported";
  EXPECT_TRUE(ProcessGone(pid));
  // The agent half-closed: the coordinator's read loop ended after the hand-back.
  EXPECT_TRUE(Eventually([&] { return coordinator_.streams_ended() == 1; }));
}

// A held Started goes out before the heartbeat that says the agent is
// shutting down: a coordinator that then loses the agent re-queues at once
// what it still has as ASSIGNED there, as never started.
TEST_F(AgentLifecycleTest, ShutdownSendsEveryHeldStartedBeforeSayingSo) {
  AgentOptions o = Options();
  o.started_hold = absl::Hours(1);
  o.drain_timeout = absl::ZeroDuration();
  StartAgent(o);
  coordinator_.Assign(Shell(14, "exec sleep 600"));
  ASSERT_GT(RecordedPid(14), 0);  // spawned, its Started held
  EXPECT_FALSE(HasKind(v1::AgentMessage::kStarted, 14)(coordinator_.received()));
  agent_->Shutdown();
  ASSERT_TRUE(agent_->WaitStopped(absl::Seconds(20)));
  const Messages ms = coordinator_.received();
  std::optional<size_t> started, shutting;
  for (size_t i = 0; i < ms.size(); ++i) {
    if (!started && ms[i].has_started() && ms[i].started().attempt_id() == 14) started = i;
    if (!shutting && ms[i].has_heartbeat() && ms[i].heartbeat().shutting_down()) shutting = i;
  }
  ASSERT_TRUE(started.has_value()) << "the held Started never went out";
  ASSERT_TRUE(shutting.has_value());
  EXPECT_LT(*started, *shutting);
}

TEST_F(AgentLifecycleTest, DrainLetsTheRunningAttemptFinishAndHandsBackNewWork) {
  AgentOptions o = Options();
  o.drain_timeout = absl::Minutes(10);
  StartAgent(o);
  const std::string gate = (dir_ / "gate").string();
  coordinator_.Assign(
      Shell(12, absl::StrCat("while [ ! -e ", gate, " ]; do sleep 0.02; done; echo finished")));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kStarted, 12)));
  agent_->Shutdown();
  ASSERT_TRUE(coordinator_.WaitFor(HeartbeatSaying("shutting down")));
  // Work the coordinator sent before it read that goes straight back.
  coordinator_.Assign(Shell(13, "echo never"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kHandBack, 13)));
  EXPECT_FALSE(HasKind(v1::AgentMessage::kStarted, 13)(coordinator_.received()));
  EXPECT_FALSE(agent_->WaitStopped(absl::Milliseconds(200))) << "still draining";
  std::ofstream(gate) << "go";
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kResult, 12)));
  ASSERT_TRUE(agent_->WaitStopped(absl::Seconds(20)));
  const Messages ms = coordinator_.received();
  EXPECT_EQ(Log(ms, 12), "finished\n");
  EXPECT_FALSE(HasKind(v1::AgentMessage::kHandBack, 12)(ms));
}

TEST_F(AgentLifecycleTest, HandBackNowDoesNotWaitForTheDrainDeadline) {
  AgentOptions o = Options();
  o.drain_timeout = absl::Minutes(10);
  StartAgent(o);
  coordinator_.Assign(Shell(14, "exec sleep 600"));
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kStarted, 14)));
  agent_->Shutdown();
  ASSERT_TRUE(coordinator_.WaitFor(HeartbeatSaying("shutting down")));
  agent_->HandBackNow();  // the second SIGTERM
  ASSERT_TRUE(agent_->WaitStopped(absl::Seconds(20)));
  const v1::HandBack* hb = nullptr;
  const Messages ms = coordinator_.received();
  hb = Find(ms, &v1::AgentMessage::hand_back, &v1::AgentMessage::has_hand_back);
  ASSERT_NE(hb, nullptr);
  EXPECT_THAT(hb->reason(), HasSubstr("second signal"));
}

TEST_F(AgentLifecycleTest, IdleAgentStopsAtOnce) {
  StartAgent(Options());
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kRegister)));
  const absl::Time start = absl::Now();
  agent_->Shutdown();
  ASSERT_TRUE(agent_->WaitStopped(absl::Seconds(20)));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

// ---------------------------------------------------------------------------
// Disk threshold

TEST_F(AgentLifecycleTest, LowDiskIsReportedAndClearedAndCallsTheHook) {
  std::atomic<uint64_t> free{uint64_t{1288490189}};  // 1.2 GiB
  std::atomic<int> hook_calls{0};
  AgentOptions o = Options();
  o.min_free_disk = uint64_t{5} << 30;
  o.free_disk = [&](const std::string& dir) -> absl::StatusOr<uint64_t> {
    EXPECT_EQ(dir, work_);
    return free.load();
  };
  o.on_low_disk = [&](std::set<std::string>) { ++hook_calls; };
  // Stopped while `free` and `hook_calls` exist (not in TearDown): stopping
  // still measures the disk.
  auto stop_first = absl::MakeCleanup([&] { agent_.reset(); });
  coordinator_.set_heartbeat_ms(30);
  StartAgent(o);
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kRegister)));
  const std::string want = absl::StrCat("low disk: 1.2 GiB free in ", work_, ", below 5 GiB");
  const v1::Register reg = coordinator_.received()[0].register_();
  EXPECT_EQ(reg.capabilities().unavailable_reason(), want);
  EXPECT_EQ(reg.capabilities().free_disk_bytes(), 1288490189);
  ASSERT_TRUE(coordinator_.WaitFor(HeartbeatSaying(want)));
  EXPECT_GE(hook_calls.load(), 1);
  // Space comes back: the next heartbeat clears the reason.
  free = uint64_t{10} << 30;
  ASSERT_TRUE(coordinator_.WaitFor([](const Messages& ms) {
    for (const v1::AgentMessage& m : ms) {
      if (m.has_heartbeat() && m.heartbeat().unavailable_reason().empty() &&
          m.heartbeat().free_disk_bytes() == (int64_t{10} << 30)) {
        return true;
      }
    }
    return false;
  }));
  const int calls = hook_calls.load();
  ASSERT_TRUE(coordinator_.WaitFor([](const Messages& ms) {
    int beats = 0;
    for (const v1::AgentMessage& m : ms) beats += m.has_heartbeat() ? 1 : 0;
    return beats > 20;
  }));
  EXPECT_EQ(hook_calls.load(), calls) << "no pruning while space suffices";
}

// The coordinator's HeartbeatPace sets the interval from the next heartbeat
// on. Registered at 2 s, paced to 20 ms: thirty heartbeats come within the
// wait only if the agent follows the pace (at 2 s they would take a minute).
TEST_F(AgentLifecycleTest, HeartbeatsFollowTheIntervalTheCoordinatorPaces) {
  coordinator_.set_heartbeat_ms(2000);
  StartAgent(Options());
  ASSERT_TRUE(coordinator_.WaitFor(HasKind(v1::AgentMessage::kRegister)));
  ASSERT_TRUE(coordinator_.Pace(20));
  EXPECT_TRUE(coordinator_.WaitFor([](const Messages& ms) {
    int beats = 0;
    for (const v1::AgentMessage& m : ms) beats += m.has_heartbeat() ? 1 : 0;
    return beats >= 30;
  }));
}

}  // namespace
}  // namespace musafarm::agent
