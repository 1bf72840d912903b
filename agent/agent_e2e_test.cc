// The real agent, coordinator and CLI on loopback: what happens to running
// tasks when an agent is killed and restarted, or stopped with SIGTERM, and
// when its disk is (by its threshold) too full.
#include <signal.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/agent_state.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

bool ProcessGone(int64_t pid) {
  std::optional<agent::ProcStat> st = agent::ReadProcStat(pid);
  return !st || st->state == 'Z';
}

class AgentE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    farm_.StartCoordinator();
    pid_file_ = farm_.dir() + "/pid";
    marker_ = farm_.dir() + "/ran-once";
  }

  // A task whose first attempt records its pid and sleeps; later ones say so and succeed.
  std::string SleepOnceSpec() {
    return farm_.WritePipeline(
        "once.yaml", absl::StrCat("stages:\n  - name: once\n    shell: \"if [ -e ", marker_,
                                  " ]; then echo again; else touch ", marker_, "; echo $$ > ",
                                  pid_file_, "; exec sleep 600; fi\"\n"));
  }
  // The first attempt's pid, once it has written it.
  int64_t TaskPid() {
    int64_t pid = 0;
    WaitFor([&] {
      return absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(pid_file_)), &pid) && pid > 0;
    });
    return pid;
  }
  bool WaitForAgents(size_t n) {
    return WaitFor([&] { return farm_.Agents().size() == n; });
  }
  std::optional<v1::Agent> FindAgent(const std::string& name) {
    for (const v1::Agent& a : farm_.Agents()) {
      if (a.name() == name) return a;
    }
    return std::nullopt;
  }
  v1::Task Task(const std::string& job, const std::string& suffix) {
    absl::StatusOr<v1::Job> j = farm_.Job(job);
    EXPECT_TRUE(j.ok()) << j.status();
    const v1::Task* t = j.ok() ? FindTask(*j, suffix) : nullptr;
    return t != nullptr ? *t : v1::Task();
  }

  Farm farm_;
  std::string pid_file_;
  std::string marker_;
};

TEST_F(AgentE2eTest, SigkilledAgentRestartedOnItsWorkDirKillsItsOldTaskWhichIsRequeued) {
  Process* agent = farm_.StartAgent("agent-1", {"os=linux"}, 1);
  ASSERT_TRUE(WaitForAgents(1));
  const std::string id = farm_.Submit(SleepOnceSpec());
  const int64_t pid = TaskPid();
  ASSERT_GT(pid, 0);
  agent->Signal(SIGKILL);
  ASSERT_EQ(agent->Wait(absl::Seconds(10)), 128 + SIGKILL);
  // Orphaned, the task still runs: its pipe reader died, but it never writes.
  ASSERT_FALSE(ProcessGone(pid));

  agent = farm_.StartAgent("agent-1", {"os=linux"}, 1);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(pid); }, absl::Seconds(20)))
      << "the earlier run's sleep 600 is still running\n"
      << agent->Output();
  // Not listed at registration: re-queued at once, and run again here.
  ASSERT_TRUE(farm_.WaitForJobEnd(id, absl::Seconds(60)));
  const v1::Task t = Task(id, "once");
  EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED) << t.reason();
  EXPECT_EQ(t.attempts(), 2);
  EXPECT_EQ(farm_.Cli({"logs", id + "/once"}).out, "again\n");
  EXPECT_TRUE(absl::StrContains(agent->Output(), "was held by an earlier run of this agent"))
      << agent->Output();
}

TEST_F(AgentE2eTest, TaskThatFinishedWhileTheCoordinatorWasAwayIsReportedAfterAnAgentKillNotRerun) {
  Process* agent = farm_.StartAgent("agent-1", {"os=linux"}, 1);
  ASSERT_TRUE(WaitForAgents(1));
  const std::string gate = farm_.dir() + "/gate";
  const std::string id = farm_.Submit(farm_.WritePipeline(
      "t.yaml", absl::StrCat("stages:\n  - name: t\n    shell: \"echo part1; while [ ! -e ", gate,
                             " ]; do sleep 0.05; done; seq 1 30000\"\n")));
  std::string want = "part1\n";
  for (int i = 1; i <= 30000; ++i) absl::StrAppend(&want, i, "\n");
  // The first line is stored; then the coordinator stops answering, and the
  // task finishes meanwhile.
  ASSERT_TRUE(WaitFor([&] { return farm_.Cli({"logs", id + "/t"}).out == "part1\n"; }));
  farm_.coordinator()->Signal(SIGSTOP);
  WriteFile(gate, "go");
  const std::string work_dir = farm_.dir() + "/agent-agent-1";
  ASSERT_TRUE(WaitFor([&] {
    absl::StatusOr<agent::AgentState> st = agent::ReadVisibleAgentState(work_dir);
    return st.ok() && st->attempts_size() == 1 && st->attempts(0).finished();
  })) << agent->Output();
  agent->Signal(SIGKILL);
  ASSERT_EQ(agent->Wait(absl::Seconds(10)), 128 + SIGKILL);
  farm_.StopCoordinator(SIGKILL);  // stopped: it never read the result

  farm_.StartCoordinator();
  agent = farm_.StartAgent("agent-1", {"os=linux"}, 1);
  ASSERT_TRUE(farm_.WaitForJobEnd(id, absl::Seconds(60))) << agent->Output();
  const v1::Task t = Task(id, "t");
  EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED) << t.reason();
  EXPECT_EQ(t.attempts(), 1) << "run again instead of reported\n" << agent->Output();
  EXPECT_EQ(t.lost_count(), 0);
  EXPECT_EQ(farm_.Cli({"logs", id + "/t"}).out, want);
  EXPECT_TRUE(absl::StrContains(agent->Output(), "had finished in an earlier run of this agent"))
      << agent->Output();
}

// One name started twice by mistake (another work dir, so another instance
// secret): the second is refused while the first is connected, and the first
// keeps its running attempt; the second takes over once the first stops.
TEST_F(AgentE2eTest, ASecondInstanceOfANameIsRefusedWhileTheFirstRunsThenTakesOver) {
  Process* first = farm_.StartAgent("agent-1", {"os=linux"}, 1);
  ASSERT_TRUE(WaitForAgents(1));
  const std::string holder_peer = FindAgent("agent-1")->peer();
  ASSERT_FALSE(holder_peer.empty());
  const std::string gate = farm_.dir() + "/gate";
  const std::string id = farm_.Submit(farm_.WritePipeline(
      "t.yaml", absl::StrCat("stages:\n  - name: t\n    shell: \"echo $$ > ", pid_file_,
                             "; while [ ! -e ", gate, " ]; do sleep 0.05; done; echo done\"\n")));
  ASSERT_GT(TaskPid(), 0);

  Process* second = farm_.StartAgentInstance("agent-1-twin", "agent-1", {"os=linux"}, 1);
  const std::string refused = "is held by another instance connected from " + holder_peer;
  // Refused, and retried: logged at ERROR each time.
  ASSERT_TRUE(WaitFor([&] {
    const std::string out = second->Output();
    size_t n = 0;
    for (size_t at = out.find(refused); at != std::string::npos; at = out.find(refused, at + 1)) {
      ++n;
    }
    return n >= 2;
  })) << second->Output();
  EXPECT_TRUE(absl::StrContains(second->Output(), " E [agent] the coordinator refused this agent"))
      << second->Output();
  // The coordinator's WARN names both peers: the refused one, then the holder.
  std::string warn;
  for (absl::string_view line : absl::StrSplit(farm_.coordinator()->Output(), '\n')) {
    if (absl::StrContains(line, " W [core] refusing agent 'agent-1' from ") &&
        absl::StrContains(line, refused)) {
      warn = std::string(line);
    }
  }
  ASSERT_FALSE(warn.empty()) << farm_.coordinator()->Output();
  const size_t from = warn.find("' from ") + 7;
  const std::string refused_peer = warn.substr(from, warn.find(": agent name", from) - from);
  EXPECT_TRUE(absl::StartsWith(refused_peer, "ipv")) << warn;
  EXPECT_NE(refused_peer, holder_peer) << warn;

  // The first keeps its stream and its attempt: the task completes there, once.
  EXPECT_EQ(FindAgent("agent-1")->peer(), holder_peer);
  WriteFile(gate, "go");
  ASSERT_TRUE(farm_.WaitForJobEnd(id, absl::Seconds(60)));
  const v1::Task t = Task(id, "t");
  EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED) << t.reason();
  EXPECT_EQ(t.attempts(), 1);
  EXPECT_EQ(t.lost_count(), 0);
  EXPECT_FALSE(absl::StrContains(first->Output(), "replaced by a newer connection"))
      << first->Output();

  // The first stops: the standby takes the name and runs the next job.
  first->Signal(SIGTERM);
  EXPECT_EQ(first->Wait(absl::Seconds(30)), 0) << first->Output();
  ASSERT_TRUE(WaitFor([&] {
    std::optional<v1::Agent> a = FindAgent("agent-1");
    return a && a->state() == v1::AGENT_STATE_CONNECTED && a->peer() != holder_peer;
  })) << second->Output();
  const std::string next = farm_.Submit(farm_.WritePipeline(
      "next.yaml", "stages:\n  - name: n\n    shell: \"echo on the standby\"\n"));
  ASSERT_TRUE(farm_.WaitForJobEnd(next, absl::Seconds(60))) << second->Output();
  EXPECT_EQ(Task(next, "n").state(), v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(farm_.Cli({"logs", next + "/n"}).out, "on the standby\n");
}

TEST_F(AgentE2eTest, SigtermWithDrainTimeoutZeroHandsBackAndTheTaskCompletesElsewhere) {
  Process* agent1 = farm_.StartAgent("agent-1", {"os=linux"}, 1, {"--drain-timeout", "0"});
  ASSERT_TRUE(WaitForAgents(1));
  const std::string id = farm_.Submit(SleepOnceSpec());
  const int64_t pid = TaskPid();
  ASSERT_GT(pid, 0);
  farm_.StartAgent("agent-2", {"os=linux"}, 1);
  ASSERT_TRUE(WaitForAgents(2));

  const absl::Time sigterm = absl::Now();
  agent1->Signal(SIGTERM);
  EXPECT_EQ(agent1->Wait(absl::Seconds(30)), 0) << agent1->Output();
  EXPECT_LT(absl::Now() - sigterm, absl::Seconds(10));
  EXPECT_TRUE(ProcessGone(pid));
  ASSERT_TRUE(farm_.WaitForJobEnd(id, absl::Seconds(60)));
  const v1::Task t = Task(id, "once");
  EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED) << t.reason();
  EXPECT_EQ(t.agent(), "agent-2");
  EXPECT_EQ(t.attempts(), 2);
  // Handed back, not lost: re-queued at once, no lost-agent budget used.
  EXPECT_EQ(t.lost_count(), 0);
  EXPECT_TRUE(absl::StrContains(agent1->Output(), "drain deadline of 0s passed"))
      << agent1->Output();
}

TEST_F(AgentE2eTest, SigtermLetsTheRunningTaskFinishTakesNoNewWorkThenExits) {
  Process* agent = farm_.StartAgent("agent-1", {"os=linux"}, 2, {"--drain-timeout", "5m"});
  ASSERT_TRUE(WaitForAgents(1));
  const std::string gate = farm_.dir() + "/gate";
  const std::string id = farm_.Submit(farm_.WritePipeline(
      "gate.yaml", absl::StrCat("stages:\n  - name: gated\n    shell: \"while [ ! -e ", gate,
                                " ]; do sleep 0.05; done; echo drained\"\n")));
  ASSERT_TRUE(farm_.WaitForTaskState(id, "gated", v1::TASK_STATE_RUNNING));

  agent->Signal(SIGTERM);
  ASSERT_TRUE(WaitFor([&] {
    std::optional<v1::Agent> a = FindAgent("agent-1");
    return a && a->unavailable_reason() == "shutting down";
  })) << agent->Output();
  // A free slot, but no new work while it drains.
  const std::string later = farm_.Submit(
      farm_.WritePipeline("later.yaml", "stages:\n  - name: later\n    exec: [\"true\"]\n"));
  EXPECT_EQ(Task(later, "later").state(), v1::TASK_STATE_QUEUED);
  EXPECT_TRUE(agent->Running());

  WriteFile(gate, "go");
  EXPECT_EQ(agent->Wait(absl::Seconds(30)), 0) << agent->Output();
  ASSERT_TRUE(farm_.WaitForJobEnd(id));
  const v1::Task t = Task(id, "gated");
  EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED) << t.reason();
  EXPECT_EQ(t.attempts(), 1);
  EXPECT_EQ(farm_.Cli({"logs", id + "/gated"}).out, "drained\n");
  EXPECT_EQ(Task(later, "later").state(), v1::TASK_STATE_QUEUED);
}

TEST_F(AgentE2eTest, SecondSigtermHandsBackAtOnce) {
  Process* agent = farm_.StartAgent("agent-1", {"os=linux"}, 1);  // default drain: 10m
  ASSERT_TRUE(WaitForAgents(1));
  const std::string id = farm_.Submit(SleepOnceSpec());
  const int64_t pid = TaskPid();
  ASSERT_GT(pid, 0);
  agent->Signal(SIGTERM);
  ASSERT_TRUE(WaitFor([&] {
    std::optional<v1::Agent> a = FindAgent("agent-1");
    return a && a->unavailable_reason() == "shutting down";
  })) << agent->Output();
  ASSERT_TRUE(agent->Running());
  agent->Signal(SIGTERM);
  EXPECT_EQ(agent->Wait(absl::Seconds(30)), 0) << agent->Output();
  EXPECT_TRUE(ProcessGone(pid));
  ASSERT_TRUE(farm_.WaitForTaskState(id, "once", v1::TASK_STATE_QUEUED, absl::Seconds(10)));
  const v1::Task t = Task(id, "once");
  EXPECT_EQ(t.lost_count(), 0);
  EXPECT_TRUE(absl::StrContains(t.reason(), "second signal")) << t.reason();
}

TEST_F(AgentE2eTest, DrainedIdleAgentExitsPromptlyOnSigterm) {
  Process* agent = farm_.StartAgent("agent-1", {"os=linux"}, 1);
  ASSERT_TRUE(WaitForAgents(1));
  ASSERT_EQ(farm_.Cli({"drain", "agent-1"}).exit_code, 0);
  const absl::Time sigterm = absl::Now();
  agent->Signal(SIGTERM);
  EXPECT_EQ(agent->Wait(absl::Seconds(30)), 0) << agent->Output();
  EXPECT_LT(absl::Now() - sigterm, absl::Seconds(3));
}

TEST_F(AgentE2eTest, AgentBelowItsDiskThresholdTakesNoWorkAndSaysWhy) {
  farm_.StartAgent("agent-1", {"os=linux"}, 1, {"--min-free-disk", "1000P"});
  std::optional<v1::Agent> a;
  ASSERT_TRUE(WaitFor([&] {
    a = FindAgent("agent-1");
    return a.has_value();
  }));
  EXPECT_TRUE(absl::StartsWith(a->unavailable_reason(), "low disk: ")) << a->unavailable_reason();
  EXPECT_TRUE(absl::StrContains(a->unavailable_reason(), "below 1000 PiB"))
      << a->unavailable_reason();
  EXPECT_GT(a->free_disk_bytes(), 0);
  const std::string id =
      farm_.Submit(farm_.WritePipeline("t.yaml", "stages:\n  - name: t\n    exec: [\"true\"]\n"));
  EXPECT_EQ(Task(id, "t").state(), v1::TASK_STATE_QUEUED);
}

}  // namespace
}  // namespace musafarm::e2e
