// The fault suite (issue 5, "Nothing lost, nothing stuck"): the real
// coordinator, agents and CLI on loopback, with faults injected at seeded
// moments. After every run CheckRun (fault_suite.h) checks that each task
// succeeded exactly once with its exact log, and prints one line per run.
// See tests/faults/README.md; rerun one seed with MF_FAULT_SEED=S.
#include <signal.h>

#include <iostream>
#include <map>
#include <random>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"
#include "tests/faults/fault_suite.h"
#include "tests/faults/tcp_proxy.h"

namespace musafarm::faults {
namespace {

using e2e::Farm;
using e2e::FindTask;
using e2e::Process;
using e2e::ReadFile;
using e2e::WaitFor;

constexpr int64_t kUs = 1'000'000;

std::vector<std::string> CoordinatorFlags(int heartbeat_timeout_s, int lost_timeout_s) {
  return {"--heartbeat-timeout", absl::StrCat(heartbeat_timeout_s), "--agent-lost-timeout",
          absl::StrCat(lost_timeout_s)};
}

absl::Duration Uniform(std::mt19937_64& rng, double from_s, double to_s) {
  return absl::Seconds(std::uniform_real_distribution<double>(from_s, to_s)(rng));
}

v1::AgentState AgentStateOf(Farm& farm, const std::string& name) {
  for (const v1::Agent& a : farm.Agents()) {
    if (a.name() == name) return a.state();
  }
  return v1::AGENT_STATE_UNSPECIFIED;
}

bool WaitForConnected(Farm& farm, const std::vector<std::string>& names,
                      absl::Duration timeout = absl::Seconds(30)) {
  return WaitFor(
      [&] {
        std::set<std::string> connected;
        for (const v1::Agent& a : farm.Agents()) {
          if (a.state() == v1::AGENT_STATE_CONNECTED) connected.insert(a.name());
        }
        for (const std::string& n : names) {
          if (connected.count(n) == 0) return false;
        }
        return true;
      },
      timeout);
}

int Count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// The pid an attempt's shell wrote, or 0.
int AttemptPid(const Workload& w, uint64_t attempt) {
  int pid = 0;
  if (!absl::SimpleAtoi(
          absl::StripAsciiWhitespace(ReadFile(absl::StrCat(w.out_dir(), "/", attempt, ".pid"))),
          &pid)) {
    return 0;
  }
  return pid;
}

// ---------------------------------------------------------------------------
// a. Coordinator SIGKILL at seeded moments, once or twice per run, restarted
//    on the same port with the same data dir. Agents reconnect and re-attach.

class CoordinatorKillTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(CoordinatorKillTest, EveryTaskSucceedsOnceWithItsExactLog) {
  const uint64_t seed = GetParam();
  std::mt19937_64 rng(seed);
  Farm farm;
  // After a restart agents get the restart grace to come back: 5 s, above
  // their worst reconnect delay (their backoff grows while the coordinator is
  // down), so attempts are re-attached rather than re-run. Both are correct;
  // re-attaching is the path under test here. (The default, 30 s, would only
  // make a run whose agent never returns slower to fail.)
  std::vector<std::string> flags = CoordinatorFlags(2, 2);
  flags.insert(flags.end(), {"--restart-grace", "5"});
  farm.StartCoordinator(flags);
  farm.StartAgent("agent-1", {}, 2);
  farm.StartAgent("agent-2", {}, 2);
  ASSERT_TRUE(WaitForConnected(farm, {"agent-1", "agent-2"}));
  const Workload w = Workload::Standard(farm.dir() + "/out");
  const std::string id = farm.Submit(farm.WritePipeline("workload.yaml", w.Yaml()));
  ASSERT_FALSE(id.empty());

  const int kills = 1 + static_cast<int>(rng() % 2);
  std::string schedule;
  for (int k = 0; k < kills; ++k) {
    const absl::Duration at = k == 0 ? Uniform(rng, 0.2, 3.0) : Uniform(rng, 0.2, 2.0);
    const absl::Duration down = Uniform(rng, 0.0, 0.5);
    absl::SleepFor(at);  // schedules the fault; nothing waits on a result by sleeping
    farm.StopCoordinator(SIGKILL);
    absl::SleepFor(down);
    farm.StartCoordinator(flags);
    absl::StrAppend(&schedule, k == 0 ? "" : ", ", "SIGKILL ",
                    absl::FormatDuration(absl::Trunc(at, absl::Milliseconds(1))),
                    k == 0 ? " after submit" : " after restart", ", down ",
                    absl::FormatDuration(absl::Trunc(down, absl::Milliseconds(1))));
  }
  std::cout << "seed=" << seed << " scenario=coordinator-sigkill faults: " << schedule << std::endl;
  CheckRun(farm, id, w, seed, "coordinator-sigkill", absl::Seconds(60));
}

INSTANTIATE_TEST_SUITE_P(Seeds, CoordinatorKillTest,
                         ::testing::ValuesIn(Seeds({11, 23, 37, 41, 59, 67, 73, 89, 97, 101})),
                         SeedTestName());

// ---------------------------------------------------------------------------
// b. Agent SIGKILL mid-task: one of three agents, at a seeded moment; even
//    seeds start it again with the same name and work dir.

class AgentKillTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(AgentKillTest, JobCompletesWithEachTaskOnce) {
  const uint64_t seed = GetParam();
  std::mt19937_64 rng(seed);
  const bool restart = seed % 2 == 0;
  Farm farm;
  const std::vector<std::string> flags = CoordinatorFlags(2, 2);
  farm.StartCoordinator(flags);
  std::map<std::string, Process*> agents;
  for (const char* name : {"agent-1", "agent-2", "agent-3"}) {
    agents[name] = farm.StartAgent(name, {}, 2);
    ASSERT_NE(agents[name], nullptr);
  }
  ASSERT_TRUE(WaitForConnected(farm, {"agent-1", "agent-2", "agent-3"}));
  const Workload w = Workload::Standard(farm.dir() + "/out");
  const std::string id = farm.Submit(farm.WritePipeline("workload.yaml", w.Yaml()));
  ASSERT_FALSE(id.empty());

  const absl::Duration at = Uniform(rng, 0.3, 2.8);
  absl::SleepFor(at);  // schedules the fault
  // A victim with work, when there is any at that moment.
  const std::vector<std::string> busy = BusyAgents(farm, id);
  const std::string victim = busy.empty() ? absl::StrCat("agent-", 1 + rng() % 3)
                                          : busy[static_cast<size_t>(rng() % busy.size())];
  agents[victim]->Signal(SIGKILL);
  ASSERT_EQ(agents[victim]->Wait(absl::Seconds(10)), 128 + SIGKILL);
  if (restart) agents[victim] = farm.StartAgent(victim, {}, 2);
  std::cout << "seed=" << seed << " scenario=agent-sigkill faults: SIGKILL " << victim << " ("
            << (busy.empty() ? "idle" : "busy") << ") "
            << absl::FormatDuration(absl::Trunc(at, absl::Milliseconds(1))) << " after submit, "
            << (restart ? "restarted with the same name and work dir" : "not restarted")
            << std::endl;
  CheckRun(farm, id, w, seed, "agent-sigkill", absl::Seconds(60));
}

INSTANTIATE_TEST_SUITE_P(Seeds, AgentKillTest,
                         ::testing::ValuesIn(Seeds({2, 3, 14, 15, 26, 27, 38, 39, 50, 51})),
                         SeedTestName());

// A task whose agent is SIGKILLed completes on another agent, and the
// coordinator re-queued it within heartbeat deadline + lost timeout of the kill.
TEST(AgentKillRequeueTest, TaskOfKilledAgentIsRequeuedWithinTheDeadlinesAndCompletesElsewhere) {
  constexpr int kHeartbeatS = 2, kLostS = 2;
  constexpr uint64_t kSeed = 0;  // no random choice in this one
  Farm farm;
  farm.StartCoordinator(CoordinatorFlags(kHeartbeatS, kLostS));
  Process* first = farm.StartAgent("agent-1", {}, 1);
  ASSERT_NE(first, nullptr);
  ASSERT_TRUE(WaitForConnected(farm, {"agent-1"}));
  // On agent-1 the task keeps running after its lines, so it is surely mid-task when killed.
  StageShape work = Shape("work", 40, 80, 10, "0.05");
  work.hold_on_agent = "agent-1";
  const Workload w(farm.dir() + "/out", {"x"}, {work});
  const std::string id = farm.Submit(farm.WritePipeline("workload.yaml", w.Yaml()));
  ASSERT_TRUE(WaitFor([&] {
    auto job = farm.Job(id);
    const v1::Task* t = job.ok() ? FindTask(*job, "x/work") : nullptr;
    return t != nullptr && t->state() == v1::TASK_STATE_RUNNING && t->log_size() > 0;
  }));
  farm.StartAgent("agent-2", {}, 1);
  ASSERT_TRUE(WaitForConnected(farm, {"agent-2"}));
  auto before = farm.Job(id);
  ASSERT_TRUE(before.ok());
  const uint64_t killed_attempt = FindTask(*before, "x/work")->attempt_id();
  ASSERT_EQ(FindTask(*before, "x/work")->agent(), "agent-1");
  ASSERT_EQ(FindTask(*before, "x/work")->state(), v1::TASK_STATE_RUNNING);

  // The killed agent leaves the attempt's shell running as an orphan (it
  // holds silently, so no SIGPIPE ends it): end its process group when done.
  struct KillGroup {
    int pid;
    ~KillGroup() {
      if (pid > 0) ::kill(-pid, SIGKILL);
    }
  } orphan{AttemptPid(w, killed_attempt)};
  ASSERT_GT(orphan.pid, 0);
  const int64_t kill_us = absl::ToUnixMicros(absl::Now());
  first->Signal(SIGKILL);
  ASSERT_EQ(first->Wait(absl::Seconds(10)), 128 + SIGKILL);

  RunReport r = CheckRun(farm, id, w, kSeed, "agent-sigkill-requeue", absl::Seconds(60));
  const v1::Task* done = FindTask(r.job, "x/work");
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->agent(), "agent-2");
  EXPECT_NE(done->attempt_id(), killed_attempt);
  int64_t requeued_us = 0;
  for (const TransitionRow& t : r.transitions) {
    if (t.attempt_id == killed_attempt && t.to == v1::TASK_STATE_QUEUED && requeued_us == 0) {
      requeued_us = t.at_us;
      std::cout << "  re-queue transition: " << t.reason << std::endl;
    }
  }
  ASSERT_GT(requeued_us, 0) << "no re-queue of attempt " << killed_attempt << " recorded";
  const double figure_s = static_cast<double>(requeued_us - kill_us) / kUs;
  std::cout << absl::StrFormat(
                   "seed=%d scenario=agent-sigkill-requeue requeued_after=%.3fs "
                   "bound=%ds (heartbeat timeout %ds + agent lost timeout %ds)",
                   kSeed, figure_s, kHeartbeatS + kLostS, kHeartbeatS, kLostS)
            << std::endl;
  EXPECT_GT(requeued_us, kill_us);
  EXPECT_LE(requeued_us - kill_us, (kHeartbeatS + kLostS) * kUs);
}

// ---------------------------------------------------------------------------
// c. Partition: agent-a reaches the coordinator through a TcpProxy that
//    blackholes it while both its tasks run, for longer than the heartbeat
//    deadline + lost timeout. The coordinator re-queues them onto agent-b.
//    After Heal, agent-a's old attempts are refused and stopped.

TEST(PartitionTest, LateResultIsRefusedAndTheOldAttemptIsStopped) {
  constexpr int kHeartbeatS = 2, kLostS = 2;
  constexpr uint64_t kSeed = 0;
  Farm farm;
  farm.StartCoordinator(CoordinatorFlags(kHeartbeatS, kLostS));
  auto proxy_or = TcpProxy::Start(farm.port());
  ASSERT_TRUE(proxy_or.ok()) << proxy_or.status();
  TcpProxy& proxy = **proxy_or;
  farm.StartAgentVia(proxy.address(), "agent-a", {}, 2);
  ASSERT_TRUE(WaitForConnected(farm, {"agent-a"}));
  // `hold` never ends by itself on agent-a: its old attempt must be stopped.
  // `short` ends on agent-a during the partition: its result is sent into the
  // blackhole and reaches the coordinator only after the heal, when it is too late.
  StageShape hold = Shape("hold", 20, 60, 5, "0.05");
  hold.hold_on_agent = "agent-a";
  const Workload w(farm.dir() + "/out", {"x"}, {hold, Shape("short", 40, 60, 4, "0.2")});
  const std::string id = farm.Submit(farm.WritePipeline("workload.yaml", w.Yaml()));
  std::map<std::string, uint64_t> old_attempt;
  ASSERT_TRUE(WaitFor([&] {
    auto job = farm.Job(id);
    if (!job.ok()) return false;
    for (const char* name : {"x/hold", "x/short"}) {
      const v1::Task* t = FindTask(*job, name);
      if (t == nullptr || t->state() != v1::TASK_STATE_RUNNING || t->log_size() == 0) return false;
      old_attempt[name] = t->attempt_id();
    }
    return true;
  }));

  proxy.Blackhole();
  const absl::Time partitioned = absl::Now();
  farm.StartAgent("agent-b", {}, 2);  // direct: not behind the proxy
  // The partition lasts until both tasks have succeeded on agent-b, which
  // needs agent-a's heartbeat deadline and lost timeout to pass first.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto job = farm.Job(id);
        if (!job.ok()) return false;
        for (const char* name : {"x/hold", "x/short"}) {
          const v1::Task* t = FindTask(*job, name);
          if (t == nullptr || t->state() != v1::TASK_STATE_SUCCEEDED) return false;
        }
        return true;
      },
      absl::Seconds(60)))
      << "the tasks were not re-run elsewhere during the partition";
  const absl::Duration partition = absl::Now() - partitioned;
  EXPECT_EQ(AgentStateOf(farm, "agent-a"), v1::AGENT_STATE_DISCONNECTED);
  const int hold_pid = AttemptPid(w, old_attempt["x/hold"]);
  ASSERT_GT(hold_pid, 0);
  ASSERT_FALSE(ProcessGone(hold_pid)) << "agent-a's old attempt should still be running";
  const bool short_ended_in_partition = ProcessGone(AttemptPid(w, old_attempt["x/short"]));

  proxy.Heal();
  const absl::Time healed = absl::Now();
  // agent-a learns its stream ended, reconnects through the proxy, lists its
  // attempts, is told they are no longer current, and stops the running one.
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(hold_pid); }, absl::Seconds(20)))
      << "the old attempt's process " << hold_pid << " still runs after the heal";
  const absl::Duration stopped_after = absl::Now() - healed;
  EXPECT_TRUE(WaitForConnected(farm, {"agent-a"}, absl::Seconds(20)))
      << "agent-a did not reconnect after the partition";
  // It registered again. (Usually on the same, resumed TCP connection: gRPC
  // opens the new stream on it, so proxy.accepted() need not grow.)
  const std::string agent_log = ReadFile(farm.dir() + "/agent-agent-a.log");
  EXPECT_GE(Count(agent_log, "registered with " + proxy.address() + " as 'agent-a'"), 2)
      << agent_log;
  for (const char* name : {"x/hold", "x/short"}) {
    EXPECT_TRUE(absl::StrContains(
        agent_log, absl::StrCat("task=", id, "/", name, " attempt=", old_attempt[name],
                                " cancel: attempt is no longer current")))
        << name << ":\n"
        << agent_log;
  }
  std::cout << "seed=" << kSeed << " scenario=partition faults: blackhole "
            << absl::FormatDuration(absl::Trunc(partition, absl::Milliseconds(1))) << " (heartbeat "
            << kHeartbeatS << "s + lost " << kLostS << "s), short attempt ended in the partition: "
            << (short_ended_in_partition ? "yes" : "no") << ", old attempt stopped "
            << absl::FormatDuration(absl::Trunc(stopped_after, absl::Milliseconds(1)))
            << " after the heal" << std::endl;

  RunReport r = CheckRun(farm, id, w, kSeed, "partition", absl::Seconds(30));
  for (const auto& [name, attempt] : old_attempt) {
    const v1::Task* t = FindTask(r.job, name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->agent(), "agent-b") << name;
    EXPECT_NE(t->attempt_id(), attempt) << name << ": the only completion is the newer attempt's";
    for (const TransitionRow& row : r.transitions) {
      EXPECT_FALSE(row.attempt_id == attempt && IsTerminal(row.to))
          << name << ": the partitioned attempt " << attempt
          << " ended the task: " << v1::TaskState_Name(row.to) << " " << row.reason;
    }
  }
}

// Partitions of seeded length: agent-1 behind a TcpProxy, agent-2 direct.
// Shorter than the heartbeat deadline (the stream survives), between it and
// deadline + lost timeout (the stream is closed, the agent comes back in time
// and its attempts are re-attached), or longer (its attempts are re-run on
// agent-2 and the late ones refused).
class PartitionSeedTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(PartitionSeedTest, JobCompletesWithEachTaskOnce) {
  const uint64_t seed = GetParam();
  std::mt19937_64 rng(seed);
  Farm farm;
  farm.StartCoordinator(CoordinatorFlags(2, 2));
  auto proxy_or = TcpProxy::Start(farm.port());
  ASSERT_TRUE(proxy_or.ok()) << proxy_or.status();
  TcpProxy& proxy = **proxy_or;
  farm.StartAgentVia(proxy.address(), "agent-1", {}, 2);
  farm.StartAgent("agent-2", {}, 2);
  ASSERT_TRUE(WaitForConnected(farm, {"agent-1", "agent-2"}));
  const Workload w = Workload::Standard(farm.dir() + "/out");
  const std::string id = farm.Submit(farm.WritePipeline("workload.yaml", w.Yaml()));
  ASSERT_FALSE(id.empty());
  const absl::Duration at = Uniform(rng, 0.3, 2.5);
  const absl::Duration length = Uniform(rng, 0.5, 6.0);
  absl::SleepFor(at);  // schedules the fault
  proxy.Blackhole();
  absl::SleepFor(length);  // the partition's seeded length
  proxy.Heal();
  std::cout << "seed=" << seed << " scenario=partition-seeded faults: agent-1 blackholed "
            << absl::FormatDuration(absl::Trunc(at, absl::Milliseconds(1))) << " after submit for "
            << absl::FormatDuration(absl::Trunc(length, absl::Milliseconds(1)))
            << " (heartbeat 2s, lost 2s)" << std::endl;
  CheckRun(farm, id, w, seed, "partition-seeded", absl::Seconds(60));
}

INSTANTIATE_TEST_SUITE_P(Seeds, PartitionSeedTest, ::testing::ValuesIn(Seeds({3, 4, 7, 19})),
                         SeedTestName());

// ---------------------------------------------------------------------------
// Severed connections: both agents behind a TcpProxy that closes every
// connection at seeded moments. Agents reconnect at once and re-attach.

class SeverTest : public ::testing::TestWithParam<uint64_t> {};

TEST_P(SeverTest, JobCompletesWithEachTaskOnce) {
  const uint64_t seed = GetParam();
  std::mt19937_64 rng(seed);
  Farm farm;
  farm.StartCoordinator(CoordinatorFlags(2, 2));
  auto proxy_or = TcpProxy::Start(farm.port());
  ASSERT_TRUE(proxy_or.ok()) << proxy_or.status();
  TcpProxy& proxy = **proxy_or;
  farm.StartAgentVia(proxy.address(), "agent-1", {}, 2);
  farm.StartAgentVia(proxy.address(), "agent-2", {}, 2);
  ASSERT_TRUE(WaitForConnected(farm, {"agent-1", "agent-2"}));
  const Workload w = Workload::Standard(farm.dir() + "/out");
  const std::string id = farm.Submit(farm.WritePipeline("workload.yaml", w.Yaml()));
  ASSERT_FALSE(id.empty());
  const int severs = 2 + static_cast<int>(rng() % 2);
  std::string schedule;
  for (int k = 0; k < severs; ++k) {
    const absl::Duration at = Uniform(rng, 0.1, 1.2);
    absl::SleepFor(at);  // schedules the fault
    proxy.Sever();
    absl::StrAppend(&schedule, k == 0 ? "" : ", ", "sever +",
                    absl::FormatDuration(absl::Trunc(at, absl::Milliseconds(1))));
  }
  std::cout << "seed=" << seed << " scenario=sever faults: " << schedule << std::endl;
  CheckRun(farm, id, w, seed, "sever", absl::Seconds(60));
  EXPECT_GT(proxy.accepted(), 2);
}

INSTANTIATE_TEST_SUITE_P(Seeds, SeverTest, ::testing::ValuesIn(Seeds({5, 8, 13})), SeedTestName());

}  // namespace
}  // namespace musafarm::faults
