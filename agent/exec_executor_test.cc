#include "agent/exec_executor.h"

#include <signal.h>

#include <filesystem>
#include <fstream>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/fakes/execution_recorder.h"

namespace musafarm::agent {
namespace {

using Recorder = testing::ExecutionRecorder;

class ExecExecutorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("mf-exec-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  v1::Assignment Exec(std::vector<std::string> argv, bool shell = false) {
    v1::Assignment a;
    a.set_task_id("1/x");
    a.set_attempt_id(7);
    for (auto& s : argv) a.mutable_run()->mutable_exec()->add_argv(s);
    a.mutable_run()->mutable_exec()->set_shell(shell);
    return a;
  }
  std::filesystem::path dir_;
  ExecExecutor executor_{ExecOptions{absl::Seconds(2), {{"MUSAFARM_AGENT", "a1"}}}};
};

TEST_F(ExecExecutorTest, RunsArgvWithoutShellInWorkdirWithEnv) {
  v1::Assignment a =
      Exec({"sh", "-c", "pwd; echo \"$GREETING $MUSAFARM_TASK_ID $MUSAFARM_AGENT\"; exit 3"});
  (*a.mutable_run()->mutable_env())["GREETING"] = "hi";
  Recorder r;
  auto exec = executor_.Start(a, dir_.string(), r.Callbacks());
  ASSERT_TRUE(exec.ok()) << exec.status();
  ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(r.Out(), dir_.string() + "\nhi 1/x a1\n");
  EXPECT_EQ(r.exit.exit_code, 3);
  EXPECT_FALSE(r.exit.cancelled);
}

TEST_F(ExecExecutorTest, ArgumentsAreNotInterpretedByAShell) {
  Recorder r;
  auto exec = executor_.Start(Exec({"echo", "$(touch pwned)", ";", "rm", "-rf", "x"}),
                              dir_.string(), r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(r.Out(), "$(touch pwned) ; rm -rf x\n");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "pwned"));
}

TEST_F(ExecExecutorTest, ShellStageRunsScript) {
  Recorder r;
  auto exec = executor_.Start(Exec({"echo a && echo b >&2 && echo c"}, /*shell=*/true),
                              dir_.string(), r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(r.Out(), "a\nb\nc\n");  // stdout and stderr interleaved in write order
  EXPECT_EQ(r.exit.exit_code, 0);
}

TEST_F(ExecExecutorTest, CancelKillsTheWholeProcessGroup) {
  Recorder r;
  // A background grandchild that would outlive a plain kill of the main pid.
  auto exec =
      executor_.Start(Exec({"sleep 600 & echo $! > child.pid; echo started; wait"}, /*shell=*/true),
                      dir_.string(), r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.WaitOutput("started"));
  pid_t child = 0;
  std::ifstream(dir_ / "child.pid") >> child;
  ASSERT_GT(child, 0);
  (*exec)->Cancel();
  ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(r.exit.cancelled);
  EXPECT_EQ(r.exit.signal, SIGTERM);
  // The grandchild is gone too: dead, or a zombie no longer running. SIGKILL
  // is delivered asynchronously, so wait for it rather than look once.
  auto running = [child] {
    std::ifstream stat("/proc/" + std::to_string(child) + "/stat");
    std::string pid, comm, state;
    return static_cast<bool>(stat >> pid >> comm >> state) && state != "Z";
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (running() && absl::Now() < deadline) absl::SleepFor(absl::Milliseconds(10));
  EXPECT_FALSE(running()) << "grandchild " << child << " still running";
}

TEST_F(ExecExecutorTest, ExitIsReportedEvenIfADetachedDescendantHoldsTheOutput) {
  Recorder r;
  // setsid leaves the task's process group, so the group kill cannot reach it,
  // and it keeps stdout open.
  auto exec = executor_.Start(
      Exec({"setsid sh -c 'echo $$ > detached.pid; exec sleep 30' & "
            "while [ ! -s detached.pid ]; do sleep 0.01; done; echo main done"},
           true),
      dir_.string(), r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(15)));
  EXPECT_EQ(r.exit.exit_code, 0);
  EXPECT_NE(r.Out().find("main done"), std::string::npos);
  EXPECT_NE(r.Out().find("outside its process group"), std::string::npos) << r.Out();
  pid_t detached = 0;
  std::ifstream(dir_ / "detached.pid") >> detached;
  if (detached > 0) ::kill(detached, SIGKILL);
}

TEST_F(ExecExecutorTest, TimeoutKillsAndReportsTimedOut) {
  v1::Assignment a = Exec({"sleep", "600"});
  a.mutable_run()->set_timeout_seconds(1);
  Recorder r;
  auto exec = executor_.Start(a, dir_.string(), r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(20)));
  EXPECT_TRUE(r.exit.timed_out);
  EXPECT_FALSE(r.exit.cancelled);
}

TEST_F(ExecExecutorTest, MissingProgramIsAnErrorResult) {
  Recorder r;
  auto exec = executor_.Start(Exec({"/nonexistent/prog"}), dir_.string(), r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_NE(r.exit.error.find("/nonexistent/prog"), std::string::npos);
  EXPECT_NE(r.Out().find("cannot run"), std::string::npos);
}

}  // namespace
}  // namespace musafarm::agent
