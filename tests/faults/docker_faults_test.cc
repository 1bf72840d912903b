// The fault suite's Docker scenario (d): a Docker daemon SIGKILLed under a
// running docker_run task. Private dockerd instances from scripts/docker/;
// label docker. See tests/faults/README.md.
#include <signal.h>

#include <filesystem>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"
#include "tests/faults/fault_suite.h"

namespace musafarm::faults {
namespace {

using e2e::CliResult;
using e2e::Farm;
using e2e::FindTask;
using e2e::Process;
using e2e::ReadFile;
using e2e::WaitFor;

const std::string kScripts = std::string(MF_SOURCE_DIR) + "/scripts/docker";
constexpr char kImage[] = "musafarm/busybox:test";

CliResult RunCmd(const std::vector<std::string>& argv, const std::string& log) {
  std::filesystem::remove(log);
  auto p = Process::Start(argv, log);
  CliResult r;
  if (!p.ok()) return r;
  r.exit_code = (*p)->Wait(absl::Seconds(120));
  r.out = ReadFile(log);
  return r;
}

bool PidAlive(int pid) { return pid > 0 && !ProcessGone(pid); }

class DockerdKillTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists("/usr/sbin/dockerd") &&
                std::filesystem::exists("/usr/bin/docker"))
        << "Docker Engine not installed: run scripts/docker/install.sh";
  }

  void TearDown() override {
    for (const std::string& dir : dirs_)
      RunCmd({kScripts + "/dockerd.sh", "stop", dir}, dir + "-stop.log");
  }

  // Starts a private dockerd with the busybox image; returns its DOCKER_HOST.
  std::string StartDockerd(const std::string& name) {
    const std::string dir = farm_.dir() + "/dockerd-" + name;
    dirs_.push_back(dir);
    CliResult r = RunCmd({kScripts + "/dockerd.sh", "start", dir}, dir + ".log");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    std::string host = std::string(absl::StripAsciiWhitespace(ReadFile(dir + "/docker-host")));
    host = std::string(absl::StripPrefix(host, "DOCKER_HOST="));
    CliResult img = RunCmd({kScripts + "/busybox-image.sh", host, kImage}, dir + "-image.log");
    EXPECT_EQ(img.exit_code, 0) << img.out;
    return host;
  }

  int DockerdPid(const std::string& name) {
    int pid = 0;
    return absl::SimpleAtoi(absl::StripAsciiWhitespace(
                                ReadFile(farm_.dir() + "/dockerd-" + name + "/dockerd.pid")),
                            &pid)
               ? pid
               : 0;
  }

  // The one-task workload: a container printing 80 numbered lines over ~4 s.
  Workload OneContainer(int retries) {
    StageShape s = Shape("run", 80, 70, 2, "0.1");
    s.retries = retries;
    s.docker_image = kImage;
    return Workload(farm_.dir() + "/out", {"x"}, {s});
  }

  // Waits until the task runs on `agent` and its container has printed.
  bool WaitRunningWithOutput(const std::string& id, const std::string& agent) {
    return WaitFor(
        [&] {
          auto job = farm_.Job(id);
          const v1::Task* t = job.ok() ? FindTask(*job, "x/run") : nullptr;
          return t != nullptr && t->state() == v1::TASK_STATE_RUNNING && t->agent() == agent &&
                 t->log_size() > 0;
        },
        absl::Seconds(60));
  }

  Farm farm_;
  std::vector<std::string> dirs_;
};

// Without a retry: the task ends FAILED within a bound (it does not hang).
TEST_F(DockerdKillTest, TaskUnderAKilledDockerdEndsFailedAndDoesNotHang) {
  const std::string host = StartDockerd("a");
  farm_.StartCoordinator({"--heartbeat-timeout", "2", "--agent-lost-timeout", "2"});
  farm_.StartAgent("agent-a", {}, 1, {"--docker", "--docker-host", host});
  const Workload w = OneContainer(/*retries=*/0);
  const std::string id = farm_.Submit(farm_.WritePipeline("workload.yaml", w.Yaml()));
  ASSERT_TRUE(WaitRunningWithOutput(id, "agent-a"));
  const int pid = DockerdPid("a");
  ASSERT_TRUE(PidAlive(pid));
  const absl::Time killed = absl::Now();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  std::cout << "seed=0 scenario=dockerd-sigkill faults: kill -9 dockerd " << pid
            << " under the running container, retries: 0" << std::endl;
  RunReport r =
      CheckRun(farm_, id, w, 0, "dockerd-sigkill", absl::Seconds(30), v1::TASK_STATE_FAILED);
  const v1::Task* t = FindTask(r.job, "x/run");
  ASSERT_NE(t, nullptr);
  std::cout << "  ended " << v1::TaskState_Name(t->state()) << " (" << t->reason() << ") "
            << absl::FormatDuration(absl::FromUnixMicros(t->ended_us()) - killed)
            << " after the dockerd SIGKILL" << std::endl;
  EXPECT_EQ(r.job.state(), v1::JOB_STATE_FAILED);
}

// With `retries: 1` and a second agent with its own dockerd: the retry runs
// there and succeeds, with the exact log of the attempt that completed.
TEST_F(DockerdKillTest, TaskUnderAKilledDockerdIsRetriedOnTheOtherAgent) {
  const std::string host_a = StartDockerd("a");
  const std::string host_b = StartDockerd("b");
  farm_.StartCoordinator({"--heartbeat-timeout", "2", "--agent-lost-timeout", "2"});
  // agent-a alone at first, so the first attempt lands there. agent-b comes
  // with more free slots, so the scheduler (most free slots first) puts the
  // retry on agent-b rather than back on agent-a, whose dockerd is dead.
  farm_.StartAgent("agent-a", {}, 1, {"--docker", "--docker-host", host_a});
  const Workload w = OneContainer(/*retries=*/1);
  const std::string id = farm_.Submit(farm_.WritePipeline("workload.yaml", w.Yaml()));
  ASSERT_TRUE(WaitRunningWithOutput(id, "agent-a"));
  farm_.StartAgent("agent-b", {}, 2, {"--docker", "--docker-host", host_b});
  ASSERT_TRUE(WaitFor([&] {
    for (const v1::Agent& a : farm_.Agents()) {
      if (a.name() == "agent-b" && a.state() == v1::AGENT_STATE_CONNECTED) return true;
    }
    return false;
  }));
  auto before = farm_.Job(id);
  ASSERT_TRUE(before.ok());
  const uint64_t first_attempt = FindTask(*before, "x/run")->attempt_id();
  ASSERT_EQ(FindTask(*before, "x/run")->state(), v1::TASK_STATE_RUNNING)
      << "the first attempt ended before the fault; make the container run longer";
  const int pid = DockerdPid("a");
  ASSERT_TRUE(PidAlive(pid));
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  std::cout << "seed=0 scenario=dockerd-sigkill-retry faults: kill -9 agent-a's dockerd " << pid
            << " under the running container, retries: 1, agent-b has its own dockerd" << std::endl;
  RunReport r = CheckRun(farm_, id, w, 0, "dockerd-sigkill-retry", absl::Seconds(60));
  const v1::Task* t = FindTask(r.job, "x/run");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->agent(), "agent-b");
  EXPECT_EQ(t->attempts(), 2);
  EXPECT_NE(t->attempt_id(), first_attempt);
  bool retried = false;
  for (const TransitionRow& row : r.transitions) {
    if (row.attempt_id == first_attempt && row.to == v1::TASK_STATE_QUEUED) {
      retried = true;
      std::cout << "  first attempt: " << row.reason << std::endl;
    }
  }
  EXPECT_TRUE(retried) << "attempt " << first_attempt << " was not retried";
}

}  // namespace
}  // namespace musafarm::faults
