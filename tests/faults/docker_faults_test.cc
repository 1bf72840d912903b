// The fault suite's Docker scenario (d): a Docker daemon SIGKILLed under a
// running docker_run task. Private dockerd instances from scripts/docker/;
// label docker. See tests/faults/README.md.
#include <signal.h>

#include <filesystem>
#include <iostream>

#include "absl/strings/numbers.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
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

// Without a retry: the attempt ends within a bound (it does not hang), and
// goes back to the queue without using a retry (issue 16, item 3: it failed
// because the engine vanished, not because of the stage); while the daemon
// stays dead the agent takes no docker work and says why.
// (Until issue 16 this test wanted the task FAILED: the behaviour it pinned
// is the one the issue asked to change.)
TEST_F(DockerdKillTest, TaskUnderAKilledDockerdGoesBackToTheQueueAndDoesNotHang) {
  const std::string host = StartDockerd("a");
  farm_.StartCoordinator({"--heartbeat-timeout", "2", "--agent-lost-timeout", "2"});
  farm_.StartAgent("agent-a", {}, 1, {"--docker", "--docker-host", host});
  const Workload w = OneContainer(/*retries=*/0);
  const std::string id = farm_.Submit(farm_.WritePipeline("workload.yaml", w.Yaml()));
  ASSERT_TRUE(WaitRunningWithOutput(id, "agent-a"));
  auto before = farm_.Job(id);
  ASSERT_TRUE(before.ok());
  const uint64_t first_attempt = FindTask(*before, "x/run")->attempt_id();
  const int pid = DockerdPid("a");
  ASSERT_TRUE(PidAlive(pid));
  const absl::Time killed = absl::Now();
  ASSERT_EQ(::kill(pid, SIGKILL), 0);
  std::cout << "seed=0 scenario=dockerd-sigkill faults: kill -9 dockerd " << pid
            << " under the running container, retries: 0" << std::endl;
  ASSERT_TRUE(WaitFor(
      [&] {
        auto job = farm_.Job(id);
        const v1::Task* t = job.ok() ? FindTask(*job, "x/run") : nullptr;
        return t != nullptr && t->state() == v1::TASK_STATE_QUEUED &&
               t->attempt_id() == first_attempt;
      },
      absl::Seconds(30)))
      << "the attempt under the dead daemon did not go back to the queue";
  std::cout << "  back in the queue " << absl::FormatDuration(absl::Now() - killed)
            << " after the dockerd SIGKILL" << std::endl;
  auto job = farm_.Job(id);
  ASSERT_TRUE(job.ok());
  const v1::Task* t = FindTask(*job, "x/run");
  EXPECT_THAT(t->reason(), ::testing::HasSubstr("docker daemon unreachable"));
  // The agent says why it takes no docker work; the task waits for it.
  CliResult agents = farm_.Cli({"agents"});
  EXPECT_THAT(agents.out, ::testing::HasSubstr(
                              "agent-a takes no docker_build,docker_run,docker_push work: docker "
                              "daemon unreachable"));
  CliResult cancel = farm_.Cli({"cancel", id});
  EXPECT_EQ(cancel.exit_code, 0) << cancel.err;
  EXPECT_TRUE(farm_.WaitForJobEnd(id, absl::Seconds(30)));
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

// Issue 16's fault test: the Docker daemon SIGKILLed during a build and again
// during a run, restarted seconds later. Each attempt under the dead daemon
// goes back to the queue (not a failure), the agent takes no docker work until
// the daemon answers, and then the tasks complete with their retries unused
// (retries: 0); the container whose `rm -f` failed while the daemon was dead
// is removed when it is back, so the daemon holds no musafarm container.
TEST_F(DockerdKillTest, DockerdKilledDuringABuildAndARunComesBackAndTasksCompleteWithRetriesUnused) {
  const std::string host = StartDockerd("a");
  const std::string dir = farm_.dir() + "/dockerd-a";
  farm_.StartCoordinator();
  farm_.StartAgent("agent-a", {}, 1, {"--docker", "--docker-host", host});
  std::filesystem::create_directories(farm_.dir() + "/ctx");
  e2e::WriteFile(farm_.dir() + "/ctx/Dockerfile",
                 "FROM musafarm/busybox:test\n"
                 "RUN for i in 1 2 3 4 5 6 7 8; do echo building $i; sleep 0.5; done\n");
  const std::string id = farm_.Submit(farm_.WritePipeline("kill.yaml", absl::StrCat(R"(stages:
  - name: build
    docker_build: {context: ")", farm_.dir(), R"(/ctx", network: none, tags: ["musafarm/killed:1"]}
  - name: run
    needs: [build]
    docker_run:
      image: musafarm/killed:1
      command: [sh, -c, "for i in 1 2 3 4 5 6 7 8; do echo running $i; sleep 0.5; done"]
      network: none
)")));
  // Kills the daemon once `task` has printed `marker`, restarts it 2 s later.
  auto kill_during = [&](const std::string& task, const std::string& marker) {
    ASSERT_TRUE(WaitFor(
        [&] {
          return absl::StrContains(farm_.Cli({"logs", absl::StrCat(id, "/", task)}).out, marker);
        },
        absl::Seconds(60)))
        << task << " never printed " << marker;
    const int pid = DockerdPid("a");
    ASSERT_TRUE(PidAlive(pid));
    ASSERT_EQ(::kill(pid, SIGKILL), 0);
    std::cout << "seed=0 scenario=dockerd-sigkill-restart faults: kill -9 dockerd " << pid
              << " during " << task << ", restarted 2s later" << std::endl;
    ASSERT_TRUE(WaitFor([&] { return !PidAlive(pid); }, absl::Seconds(10)));
    // The one sleep: the daemon stays down a while, as after a crash. Then
    // it is restarted as an operator would: what the dead daemon left
    // running (shims, container processes) is ended first (stop), else
    // dockerd.sh refuses to start over it.
    absl::SleepFor(absl::Seconds(2));
    RunCmd({kScripts + "/dockerd.sh", "stop", dir}, dir + "-stop-killed.log");
    CliResult up = RunCmd({kScripts + "/dockerd.sh", "start", dir}, dir + "-restart.log");
    ASSERT_EQ(up.exit_code, 0) << up.out;
  };
  kill_during("build", "building 2");
  kill_during("run", "running 2");
  ASSERT_TRUE(farm_.WaitForJobEnd(id, absl::Seconds(120)));
  auto job = farm_.Job(id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
  for (const char* name : {"build", "run"}) {
    const v1::Task* t = FindTask(*job, name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->state(), v1::TASK_STATE_SUCCEEDED) << name << ": " << t->reason();
    EXPECT_EQ(t->spec().run().retries(), 0);
    EXPECT_GE(t->attempts(), 2) << name << " was not interrupted";
    std::cout << "  " << name << ": " << t->attempts() << " attempts, retries: 0" << std::endl;
  }
  // No container of the farm left on the daemon.
  std::string left;
  EXPECT_TRUE(WaitFor(
      [&] {
        left = RunCmd({"/usr/bin/docker", "-H", host, "ps", "-a", "--filter",
                       "label=musafarm.farm=musafarm", "--format", "{{.Names}}"},
                      farm_.dir() + "/ps.log")
                   .out;
        return absl::StripAsciiWhitespace(left).empty();
      },
      absl::Seconds(30)))
      << "left on the daemon: " << left;
}

}  // namespace
}  // namespace musafarm::faults
