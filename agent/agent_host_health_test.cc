// The agent's host health (issue 16, item 3) against a fake coordinator: no
// docker work while the daemon does not answer, an attempt the host lost is
// handed back (after a heartbeat saying why) instead of failing, and so is a
// failed attempt whose GPU then fails its probe.
#include <filesystem>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "agent/agent.h"
#include "agent/executor/exec_executor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_coordinator_link.h"

namespace musafarm::agent {
namespace {

namespace fs = std::filesystem;
using Messages = testing::FakeCoordinatorLink::Messages;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A docker executor whose attempts end at once with `exit`.
class EndingExecution final : public Execution {
 public:
  EndingExecution(ExitInfo exit, ExecCallbacks cb) {
    thread_ = std::thread([exit = std::move(exit), cb = std::move(cb)]() mutable {
      cb.on_output("error waiting for container: unexpected EOF\n");
      cb.on_exit(std::move(exit));
    });
  }
  ~EndingExecution() override { thread_.join(); }
  void Cancel() override {}

 private:
  std::thread thread_;
};

class EndingExecutor final : public Executor {
 public:
  explicit EndingExecutor(ExitInfo exit) : exit_(std::move(exit)) {}
  absl::StatusOr<std::unique_ptr<Execution>> Start(const v1::Assignment&, const std::string&,
                                                   ExecCallbacks cb) override {
    absl::MutexLock lock(&mu_);
    ++started_;
    return std::unique_ptr<Execution>(std::make_unique<EndingExecution>(exit_, std::move(cb)));
  }
  int started() {
    absl::MutexLock lock(&mu_);
    return started_;
  }

 private:
  const ExitInfo exit_;
  absl::Mutex mu_;
  int started_ ABSL_GUARDED_BY(mu_) = 0;
};

// Index of the first message `pred` holds for, -1 if none.
int IndexOf(const Messages& ms, const std::function<bool(const v1::AgentMessage&)>& pred) {
  for (size_t i = 0; i < ms.size(); ++i) {
    if (pred(ms[i])) return static_cast<int>(i);
  }
  return -1;
}

class AgentHostHealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("mf-health-", ::getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    agent_.reset();
    fs::remove_all(dir_);
  }
  AgentOptions Options() {
    AgentOptions o;
    o.name = "a1";
    o.slots = 2;
    o.work_dir = (dir_ / "work").string();
    o.min_free_disk = 0;
    o.final_ack_timeout = absl::Seconds(5);
    o.docker_unreachable = [this] {
      absl::MutexLock lock(&mu_);
      return docker_down_;
    };
    return o;
  }
  void SetDockerDown(std::string why) {
    absl::MutexLock lock(&mu_);
    docker_down_ = std::move(why);
  }
  void StartAgent(AgentOptions o, Executor* docker) {
    agent_ = std::make_unique<Agent>(std::move(o), &coordinator_, &exec_, docker);
    absl::Status s = agent_->Start();
    ASSERT_TRUE(s.ok()) << s;
  }
  static v1::Assignment DockerRun(uint64_t attempt) {
    v1::Assignment a;
    a.set_task_id(absl::StrCat("1/r", attempt));
    a.set_attempt_id(attempt);
    a.set_job_id("1");
    a.mutable_run()->mutable_docker_run()->set_image("busybox");
    return a;
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
  static auto HandBackOf(uint64_t attempt) {
    return [attempt](const v1::AgentMessage& m) {
      return m.has_hand_back() && m.hand_back().attempt_id() == attempt;
    };
  }

  fs::path dir_;
  absl::Mutex mu_;
  std::string docker_down_ ABSL_GUARDED_BY(mu_);
  std::vector<std::vector<int32_t>> probed_ ABSL_GUARDED_BY(mu_);
  testing::FakeCoordinatorLink coordinator_;
  ExecExecutor exec_{ExecOptions{absl::Seconds(1), {}, ""}};
  std::unique_ptr<Agent> agent_;
};

TEST_F(AgentHostHealthTest, NoDockerWorkWhileTheDaemonIsDownButExecStillRuns) {
  SetDockerDown("docker daemon unreachable: Cannot connect to the Docker daemon");
  EndingExecutor docker(ExitInfo{});
  StartAgent(Options(), &docker);
  // Registered saying so, per kind.
  ASSERT_TRUE(coordinator_.WaitFor([](const Messages& ms) { return !ms.empty(); }));
  const v1::Capabilities caps = coordinator_.registration().capabilities();
  EXPECT_THAT(caps.unavailable_kinds(),
              ElementsAre(v1::STAGE_KIND_DOCKER_BUILD, v1::STAGE_KIND_DOCKER_RUN,
                          v1::STAGE_KIND_DOCKER_PUSH));
  EXPECT_EQ(caps.kinds_unavailable_reason(),
            "docker daemon unreachable: Cannot connect to the Docker daemon");
  EXPECT_EQ(caps.unavailable_reason(), "");  // the agent as a whole takes work

  coordinator_.Assign(DockerRun(5));
  coordinator_.Assign(Shell(6, "echo exec runs"));
  ASSERT_TRUE(coordinator_.WaitFor([](const Messages& ms) {
    return IndexOf(ms, HandBackOf(5)) >= 0 &&
           IndexOf(ms, [](const v1::AgentMessage& m) { return m.has_result(); }) >= 0;
  }));
  const Messages ms = coordinator_.received();
  const v1::HandBack& back = ms[IndexOf(ms, HandBackOf(5))].hand_back();
  EXPECT_EQ(back.reason(), "not started: docker daemon unreachable: Cannot connect to the Docker daemon");
  EXPECT_EQ(docker.started(), 0);
  EXPECT_EQ(ms[IndexOf(ms, [](const v1::AgentMessage& m) { return m.has_result(); })]
                .result()
                .attempt_id(),
            6u);

  // The daemon answers again: the agent says so at once, and takes docker work.
  SetDockerDown("");
  agent_->HostHealthChanged();
  ASSERT_TRUE(coordinator_.WaitFor([](const Messages& seen) {
    return !seen.empty() && seen.back().has_heartbeat() &&
           seen.back().heartbeat().unavailable_kinds().empty();
  }));
  coordinator_.Assign(DockerRun(7));
  ASSERT_TRUE(coordinator_.WaitFor([](const Messages& seen) {
    return IndexOf(seen, [](const v1::AgentMessage& m) {
             return m.has_result() && m.result().attempt_id() == 7;
           }) >= 0;
  }));
  EXPECT_EQ(docker.started(), 1);
}

TEST_F(AgentHostHealthTest, AnAttemptTheDaemonLostIsHandedBackAfterAHeartbeatNotReported) {
  ExitInfo lost;
  lost.exit_code = 125;
  lost.host_lost = "docker daemon unreachable: exit 1: Cannot connect";
  lost.daemon_lost = true;
  EndingExecutor docker(lost);
  AgentOptions o = Options();
  o.on_docker_lost = [&](const std::string& why) {
    SetDockerDown(why);  // as DaemonWatcher::MarkDown
  };
  StartAgent(o, &docker);
  coordinator_.Assign(DockerRun(9));
  ASSERT_TRUE(coordinator_.WaitFor(
      [](const Messages& ms) { return IndexOf(ms, HandBackOf(9)) >= 0; }));
  const Messages ms = coordinator_.received();
  const int back = IndexOf(ms, HandBackOf(9));
  EXPECT_EQ(ms[back].hand_back().reason(), "docker daemon unreachable: exit 1: Cannot connect");
  // A heartbeat saying the docker kinds are out of use went first.
  const int beat = IndexOf(ms, [](const v1::AgentMessage& m) {
    return m.has_heartbeat() && m.heartbeat().unavailable_kinds_size() == 3;
  });
  ASSERT_GE(beat, 0);
  EXPECT_LT(beat, back);
  EXPECT_EQ(IndexOf(ms, [](const v1::AgentMessage& m) { return m.has_result(); }), -1);
  absl::MutexLock lock(&mu_);
  EXPECT_EQ(docker_down_, "docker daemon unreachable: exit 1: Cannot connect");
}

TEST_F(AgentHostHealthTest, AFailedGpuAttemptWhoseGpuFailsItsProbeIsHandedBackAndTheGpuFenced) {
  AgentOptions o = Options();
  o.gpus.vendor = "mthreads";
  o.gpus.count = 2;
  o.probe_gpus = [&](const std::vector<int32_t>& gpus) {
    absl::MutexLock lock(&mu_);
    probed_.push_back(gpus);
    return std::string("GPU 1: `probe 1` exit 1: ECC error");
  };
  o.fenced_gpus = [] { return std::map<int32_t, std::string>{{1, "GPU 1: `probe 1` exit 1: ECC error"}}; };
  StartAgent(o, nullptr);
  v1::Assignment ok = Shell(3, "exit 0");
  ok.add_gpu_ids(1);
  v1::Assignment failed = Shell(4, "exit 1");
  failed.add_gpu_ids(1);
  coordinator_.Assign(ok);
  coordinator_.Assign(failed);
  ASSERT_TRUE(coordinator_.WaitFor([](const Messages& ms) {
    return IndexOf(ms, HandBackOf(4)) >= 0 &&
           IndexOf(ms, [](const v1::AgentMessage& m) { return m.has_result(); }) >= 0;
  }));
  const Messages ms = coordinator_.received();
  {
    absl::MutexLock lock(&mu_);
    EXPECT_THAT(probed_, ElementsAre(ElementsAre(1), ElementsAre(1)));  // after each GPU attempt
  }
  // The attempt that succeeded is reported as such; the failed one goes back.
  const int result = IndexOf(ms, [](const v1::AgentMessage& m) { return m.has_result(); });
  EXPECT_EQ(ms[result].result().attempt_id(), 3u);
  const int back = IndexOf(ms, HandBackOf(4));
  EXPECT_THAT(ms[back].hand_back().reason(),
              HasSubstr("failed on a GPU that fails its probe: GPU 1: `probe 1` exit 1"));
  const int beat = IndexOf(ms, [](const v1::AgentMessage& m) {
    return m.has_heartbeat() && m.heartbeat().fenced_gpus_size() == 1;
  });
  ASSERT_GE(beat, 0);
  EXPECT_LT(beat, back);
  EXPECT_EQ(coordinator_.registration().capabilities().fenced_gpus_size(), 1);
}

}  // namespace
}  // namespace musafarm::agent
