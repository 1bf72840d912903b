// End-to-end tests: the real coordinator, agents and CLI on loopback.
#include <signal.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

constexpr int64_t kUs = 1'000'000;

class FarmTest : public ::testing::Test {
 protected:
  void StartFarm(int agents = 2) {
    farm_.StartCoordinator();
    for (int i = 1; i <= agents; ++i) farm_.StartAgent(absl::StrCat("agent-", i), {"os=linux"}, 2);
    ASSERT_TRUE(WaitFor([&] { return farm_.Agents().size() == static_cast<size_t>(agents); }))
        << "agents did not register";
  }
  Farm farm_;
};

TEST_F(FarmTest, MatrixRunsInDependencyOrderInParallelOnBothAgents) {
  StartFarm();
  CliResult r = farm_.Cli(
      {"submit", std::string(MF_SOURCE_DIR) + "/pipelines/torch_musa-exec.yaml", "--watch"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "job 1 succeeded")) << r.out;
  auto job = farm_.Job("1");
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->tasks_size(), 15);
  std::set<std::string> agents_used;
  for (const v1::Task& t : job->tasks()) {
    EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED) << t.id();
    agents_used.insert(t.agent());
    for (const std::string& need : t.spec().needs()) {
      const v1::Task* dep = FindTask(*job, need.substr(job->id().size() + 1));
      ASSERT_NE(dep, nullptr);
      EXPECT_GE(t.started_us(), dep->ended_us())
          << t.id() << " started before " << need << " ended";
    }
  }
  EXPECT_EQ(agents_used, (std::set<std::string>{"agent-1", "agent-2"}));
  // Independent tasks ran at the same time on different agents.
  bool overlap = false;
  for (const v1::Task& a : job->tasks()) {
    for (const v1::Task& b : job->tasks()) {
      overlap = overlap || (a.agent() != b.agent() && a.started_us() < b.ended_us() &&
                            b.started_us() < a.ended_us());
    }
  }
  EXPECT_TRUE(overlap) << "no two tasks ran at once on different agents";
  // The stored log is what the stage printed.
  CliResult log = farm_.Cli({"logs", "1/dev-3.9/test"});
  EXPECT_EQ(log.exit_code, 0);
  EXPECT_EQ(log.out,
            "integration and unit tests in the dev image, Python 3.9\n"
            "=== 12 passed, 1 skipped in 1.00s ===\n");
}

// One coordinator per port and per data directory: a second one started by
// mistake exits with a message saying why, and the first keeps serving.
TEST_F(FarmTest, ASecondCoordinatorOnTheSamePortOrDataDirIsRefused) {
  StartFarm(1);
  const std::string id = farm_.Submit(farm_.WritePipeline(
      "one.yaml", "stages:\n  - name: s\n    shell: \"echo one\"\n"));
  ASSERT_TRUE(farm_.WaitForJobEnd(id, absl::Seconds(60)));

  // Same port, its own data directory: the bind fails (no SO_REUSEPORT).
  auto same_port = Process::Start({MF_COORDINATOR_BIN, "--listen", farm_.address(), "--data-dir",
                                   farm_.dir() + "/second", "--insecure"},
                                  farm_.dir() + "/second-port.log");
  ASSERT_TRUE(same_port.ok()) << same_port.status();
  EXPECT_EQ((*same_port)->Wait(absl::Seconds(30)), 1) << (*same_port)->Output();
  EXPECT_TRUE(absl::StrContains((*same_port)->Output(),
                                absl::StrCat("cannot listen on '", farm_.address(), "'")))
      << (*same_port)->Output();

  // Another port, the same data directory: refused before the store is opened.
  auto same_dir = Process::Start({MF_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--data-dir",
                                  farm_.dir() + "/coordinator", "--insecure"},
                                 farm_.dir() + "/second-dir.log");
  ASSERT_TRUE(same_dir.ok()) << same_dir.status();
  EXPECT_EQ((*same_dir)->Wait(absl::Seconds(30)), 1) << (*same_dir)->Output();
  EXPECT_TRUE(absl::StrContains(
      (*same_dir)->Output(),
      absl::StrCat("data dir '", farm_.dir(), "/coordinator' is in use by another coordinator (pid ")))
      << (*same_dir)->Output();

  // The first still answers every call with its own state.
  for (int i = 0; i < 10; ++i) {
    CliResult jobs = farm_.Cli({"jobs"});
    ASSERT_EQ(jobs.exit_code, 0) << jobs.err;
    EXPECT_TRUE(absl::StrContains(jobs.out, "succeeded")) << jobs.out;
  }
  EXPECT_TRUE(farm_.coordinator()->Running());
}

TEST_F(FarmTest, FailingStageSkipsDependantsAndExitsOne) {
  StartFarm();
  const std::string spec = farm_.WritePipeline("fail.yaml", R"(
matrix:
  python: ["3.8", "3.9"]
stages:
  - name: base
    exec: ["sh", "-c", "test ${python} != 3.9 || { echo broken >&2; exit 4; }"]
  - name: dev
    needs: [base]
    exec: ["true"]
  - name: test
    needs: [dev]
    exec: ["true"]
)");
  CliResult r = farm_.Cli({"submit", spec, "--watch"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto job = farm_.Job("1");
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), v1::JOB_STATE_FAILED);
  EXPECT_EQ(FindTask(*job, "3.9/base")->state(), v1::TASK_STATE_FAILED);
  EXPECT_EQ(FindTask(*job, "3.9/base")->exit_code(), 4);
  for (const char* t : {"3.9/dev", "3.9/test"}) {
    EXPECT_EQ(FindTask(*job, t)->state(), v1::TASK_STATE_SKIPPED) << t;
    EXPECT_EQ(FindTask(*job, t)->reason(), "skipped: dependency failed") << t;
  }
  EXPECT_EQ(FindTask(*job, "3.8/test")->state(), v1::TASK_STATE_SUCCEEDED);
  CliResult status = farm_.Cli({"status", "1"});
  EXPECT_EQ(status.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(status.out, "skipped: dependency failed")) << status.out;
}

TEST_F(FarmTest, WatchShowsLogLinesWhileTheTaskRuns) {
  StartFarm(1);
  const std::string gate = farm_.dir() + "/gate";
  const std::string spec =
      farm_.WritePipeline("gate.yaml", absl::StrCat(R"(
stages:
  - name: waiter
    shell: "echo waiting for the gate; while [ ! -e )",
                                                    gate, R"( ]; do sleep 0.05; done; echo through"
)"));
  const std::string id = farm_.Submit(spec);
  auto watch = farm_.CliAsync({"watch", id, "--logs"}, farm_.dir() + "/watch.out");
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(watch->Output(), "[waiter] waiting for the gate");
  })) << watch->Output();
  // The line arrived while the task was still running: it cannot end before the gate opens.
  auto job = farm_.Job(id);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(FindTask(*job, "waiter")->state(), v1::TASK_STATE_RUNNING);
  WriteFile(gate, "");
  EXPECT_EQ(watch->Wait(absl::Seconds(30)), 0) << watch->Output();
  EXPECT_TRUE(absl::StrContains(watch->Output(), "[waiter] through")) << watch->Output();
}

// A kB field of /proc/PID/status ("VmHWM": the peak resident set), in bytes.
uint64_t ProcStatusBytes(pid_t pid, const std::string& field) {
  const std::string status = ReadFile(absl::StrCat("/proc/", pid, "/status"));
  const size_t at = status.find(field + ":");
  uint64_t kb = 0;
  if (at == std::string::npos) return 0;
  const size_t end = status.find('\n', at);
  absl::string_view value(status.data() + at + field.size() + 1, end - at - field.size() - 1);
  absl::ConsumeSuffix(&value, " kB");
  return absl::SimpleAtoi(absl::StripAsciiWhitespace(value), &kb) ? kb << 10 : 0;
}

// A watcher that stops reading while its task prints 96 MB: the coordinator
// does not hold the log for it (WatchHub's window, docs/architecture.md), and
// once it reads again it gets every byte, in order, then the job's end.
TEST_F(FarmTest, AStalledWatcherDoesNotGrowTheCoordinatorAndStillGetsEveryByteInOrder) {
  {
    // In the sanitizer build (scripts/asan-test.sh) AddressSanitizer keeps
    // freed memory in its quarantine, 256 MiB by default: the peak RSS would
    // measure that (~250 MiB here), not what the coordinator holds. This
    // farm's processes run without it; every other test keeps it. Harmless
    // elsewhere: only ASan reads ASAN_OPTIONS.
    const char* before = std::getenv("ASAN_OPTIONS");
    const std::string kept = before != nullptr ? before : "";
    const std::string options = absl::StrCat(kept, kept.empty() ? "" : ":",
                                             "quarantine_size_mb=0:thread_local_quarantine_size_kb=0");
    setenv("ASAN_OPTIONS", options.c_str(), 1);
    StartFarm(1);
    if (before != nullptr) {
      setenv("ASAN_OPTIONS", kept.c_str(), 1);
    } else {
      unsetenv("ASAN_OPTIONS");
    }
  }
  const std::string gate = farm_.dir() + "/gate";
  const std::string spec = farm_.WritePipeline("loud.yaml", absl::StrCat(R"(
stages:
  - name: loud
    shell: "echo ready; while [ ! -e )",
                                                                         gate, R"( ]; do sleep 0.05; done; seq -f %0120.0f 1 800000"
)"));
  const std::string id = farm_.Submit(spec);
  auto watch = farm_.CliAsync({"watch", id, "--logs"}, farm_.dir() + "/watch.out");
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(watch->Output(), "[loud] ready"); }))
      << watch->Output();
  watch->Signal(SIGSTOP);
  const pid_t coordinator = farm_.coordinator()->pid();
  const uint64_t peak_before = ProcStatusBytes(coordinator, "VmHWM");
  WriteFile(gate, "");
  ASSERT_TRUE(farm_.WaitForJobEnd(id));
  const uint64_t grew = ProcStatusBytes(coordinator, "VmHWM") - peak_before;
  // The log is 96.8 MB; a watcher costs its window (4 MiB) and a message.
  EXPECT_LT(grew, uint64_t{48} << 20) << "the coordinator's peak RSS grew by " << grew;
  watch->Signal(SIGCONT);
  ASSERT_EQ(watch->Wait(absl::Seconds(120)), 0);
  CliResult stored = farm_.Cli({"logs", id + "/loud"});
  ASSERT_EQ(stored.exit_code, 0) << stored.err;
  ASSERT_EQ(stored.out.size(), 6u + 800000u * 121u);
  std::string printed;
  printed.reserve(stored.out.size());
  for (absl::string_view line : absl::StrSplit(watch->Output(), '\n')) {
    if (absl::ConsumePrefix(&line, "[loud] ")) absl::StrAppend(&printed, line, "\n");
  }
  EXPECT_TRUE(printed == stored.out) << "the watcher printed " << printed.size() << " of "
                                     << stored.out.size() << " bytes, or others";
}

TEST_F(FarmTest, CancelEndsARunningSleepWithinTwoSeconds) {
  StartFarm(1);
  const std::string spec = farm_.WritePipeline("sleep.yaml", R"(
stages:
  - name: sleeper
    exec: ["sleep", "600"]
  - name: after
    needs: [sleeper]
    exec: ["true"]
)");
  const std::string id = farm_.Submit(spec);
  ASSERT_TRUE(farm_.WaitForTaskState(id, "sleeper", v1::TASK_STATE_RUNNING));
  auto watch = farm_.CliAsync({"watch", id}, farm_.dir() + "/watch.out");
  CliResult r = farm_.Cli({"cancel", id});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(farm_.WaitForJobEnd(id));
  auto job = farm_.Job(id);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), v1::JOB_STATE_CANCELLED);
  const v1::Task* sleeper = FindTask(*job, "sleeper");
  EXPECT_EQ(sleeper->state(), v1::TASK_STATE_CANCELLED);
  ASSERT_GT(sleeper->cancel_requested_us(), 0);
  EXPECT_LT(sleeper->ended_us() - sleeper->cancel_requested_us(), 2 * kUs)
      << "recorded end " << sleeper->ended_us() << " vs cancel " << sleeper->cancel_requested_us();
  EXPECT_EQ(FindTask(*job, "after")->state(), v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(watch->Wait(absl::Seconds(30)), 1) << watch->Output();
  // No sleep 600 is left behind.
  CliResult ps = farm_.Cli({"agents"});
  EXPECT_TRUE(absl::StrContains(ps.out, "0/2")) << ps.out;
}

TEST_F(FarmTest, AgentsListsBothWithLabelsAndState) {
  farm_.StartCoordinator();
  farm_.StartAgent("gpu-host", {"gpu=mthreads", "zone=a"}, 3);
  farm_.StartAgent("cpu-host", {"os=linux"}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm_.Agents().size() == 2; }));
  CliResult r = farm_.Cli({"agents"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.out, "gpu-host")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "gpu=mthreads,zone=a")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "cpu-host")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "connected")) << r.out;
  CliResult drained = farm_.Cli({"drain", "cpu-host"});
  EXPECT_EQ(drained.exit_code, 0) << drained.err;
  bool draining = false;
  for (const v1::Agent& a : farm_.Agents()) {
    if (a.name() == "cpu-host") draining = a.state() == v1::AGENT_STATE_DRAINING;
  }
  EXPECT_TRUE(draining);
  EXPECT_EQ(farm_.Cli({"drain", "no-such-agent"}).exit_code, 2);
}

TEST_F(FarmTest, CoordinatorRestartKeepsJobsStatesAndLogsAndTheJobGoesOn) {
  StartFarm();
  const std::string spec = farm_.WritePipeline("restart.yaml", R"(
stages:
  - name: counter
    shell: "for i in 1 2 3 4 5 6 7 8 9 10; do echo line $i; sleep 0.2; done"
  - name: after
    needs: [counter]
    exec: ["echo", "after"]
)");
  const std::string quick =
      farm_.WritePipeline("quick.yaml", "stages:\n  - name: q\n    exec: [\"echo\", \"quick\"]\n");
  const std::string first = farm_.Submit(quick);
  ASSERT_TRUE(farm_.WaitForJobEnd(first));
  const std::string id = farm_.Submit(spec);
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(farm_.Cli({"logs", id + "/counter"}).out, "line 2");
  }));
  farm_.StopCoordinator(SIGTERM);
  farm_.StartCoordinator();
  ASSERT_TRUE(farm_.WaitForJobEnd(id, absl::Seconds(90)));
  auto job = farm_.Job(id);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(FindTask(*job, "counter")->attempts(), 1) << "the attempt was re-attached, not rerun";
  std::string expected;
  for (int i = 1; i <= 10; ++i) expected += absl::StrCat("line ", i, "\n");
  EXPECT_EQ(farm_.Cli({"logs", id + "/counter"}).out, expected);
  auto before = farm_.Job(first);
  ASSERT_TRUE(before.ok());
  EXPECT_EQ(before->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(farm_.Cli({"logs", first + "/q"}).out, "quick\n");
}

TEST_F(FarmTest, BadSpecsGetClearMessagesAndExitTwoWhileServingOthers) {
  StartFarm(1);
  struct Case {
    const char* name;
    const char* yaml;
    const char* want;  // in the message
  } cases[] = {
      {"syntax.yaml", "stages:\n  - name: a\n    exec: [\"x\"\n", "syntax.yaml:"},
      {"cycle.yaml",
       "stages:\n  - name: a\n    needs: [b]\n    exec: [x]\n  - name: b\n    needs: [a]\n    "
       "exec: [x]\n",
       "cycle"},
      {"unknown.yaml", "stages:\n  - name: a\n    needs: [nope]\n    exec: [x]\n",
       "unknown.yaml:3"},
      {"empty.yaml", "matrix:\n  python: []\nstages:\n  - name: a\n    exec: [x]\n",
       "empty.yaml:2"},
      {"field.yaml", "stages:\n  - name: a\n    timout: 5m\n    exec: [x]\n", "timout"},
  };
  for (const Case& c : cases) {
    CliResult r = farm_.Cli({"submit", farm_.WritePipeline(c.name, c.yaml)});
    EXPECT_EQ(r.exit_code, 2) << c.name << ": " << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, c.want)) << c.name << ": " << r.err;
  }
  CliResult jobs = farm_.Cli({"jobs", "--output", "json"});
  EXPECT_EQ(jobs.exit_code, 0);
  EXPECT_FALSE(absl::StrContains(jobs.out, "\"id\""))
      << "a bad spec queued something: " << jobs.out;
  // The coordinator still serves.
  const std::string id =
      farm_.Submit(farm_.WritePipeline("ok.yaml", "stages:\n  - name: a\n    exec: [\"true\"]\n"));
  EXPECT_TRUE(farm_.WaitForJobEnd(id));
  EXPECT_TRUE(farm_.coordinator()->Running());
  // Missing file and unknown job are bad input too.
  EXPECT_EQ(farm_.Cli({"submit", farm_.dir() + "/missing.yaml"}).exit_code, 2);
  EXPECT_EQ(farm_.Cli({"status", "999"}).exit_code, 2);
}

TEST_F(FarmTest, JsonOutputOfTheRealFarmPrintsRfc3339Times) {
  StartFarm(1);
  const std::string id = farm_.Submit(
      farm_.WritePipeline("hi.yaml", "stages:\n  - name: a\n    exec: [\"echo\", \"hi\"]\n"));
  ASSERT_TRUE(farm_.WaitForJobEnd(id));
  // Each "xTime" is RFC 3339 and the same instant as its "xUs", to the microsecond.
  auto expect_time = [](const nlohmann::json& obj, const std::string& name) {
    ASSERT_TRUE(obj.contains(name + "Us") && obj.contains(name + "Time")) << name << obj.dump();
    const std::string text = obj[name + "Time"].get<std::string>();
    absl::Time t;
    std::string err;
    ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, text, &t, &err)) << text << ": " << err;
    EXPECT_TRUE(absl::EndsWith(text, "Z")) << text << ": not in UTC";
    int64_t us = 0;
    ASSERT_TRUE(absl::SimpleAtoi(obj[name + "Us"].get<std::string>(), &us));
    EXPECT_EQ(t, absl::FromUnixMicros(us)) << name;
  };
  CliResult r = farm_.Cli({"status", id, "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json job = nlohmann::json::parse(r.out);
  expect_time(job, "created");
  expect_time(job, "ended");
  expect_time(job["tasks"][0], "started");
  expect_time(job["tasks"][0], "ended");
  r = farm_.Cli({"agents", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expect_time(nlohmann::json::parse(r.out)["agents"][0], "lastSeen");
  // logs -o json: one LogData a line, the bytes in base64.
  r = farm_.Cli({"logs", id + "/a", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  v1::LogData chunk;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &chunk).ok()) << r.out;
  EXPECT_EQ(chunk.task_id(), id + "/a");
  EXPECT_EQ(chunk.data(), "hi\n");
}

TEST(CliTest, SubmitToAbsentCoordinatorExitsThree) {
  Farm farm;  // no coordinator started
  const std::string spec =
      farm.WritePipeline("ok.yaml", "stages:\n  - name: a\n    exec: [\"true\"]\n");
  // Port 1 on loopback: a well-formed address nobody listens at. (Port 0,
  // which this test used, is now refused as bad input, exit 2: issue 12.)
  auto cli = Process::Start({MF_CLI_BIN, "--insecure", "--coordinator", "127.0.0.1:1", "submit", spec},
                            farm.dir() + "/cli.log");
  ASSERT_TRUE(cli.ok()) << cli.status();
  EXPECT_EQ((*cli)->Wait(absl::Seconds(60)), 3) << (*cli)->Output();
  EXPECT_TRUE(absl::StrContains((*cli)->Output(), "cannot reach coordinator")) << (*cli)->Output();
}

}  // namespace
}  // namespace musafarm::e2e
