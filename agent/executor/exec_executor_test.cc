#include "agent/executor/exec_executor.h"

#include <signal.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <vector>

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
  ExecExecutor executor_{ExecOptions{absl::Seconds(2), {{"MUSAFARM_AGENT", "a1"}}, "mthreads"}};
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

// Prints the process's own argv (NUL-separated in /proc) and some variables.
constexpr char kShowArgvAndEnv[] =
    "printf 'argv:'; tr '\\0' ' ' < /proc/$$/cmdline; echo; "
    "for v in TOKEN MUSA_URL UNLISTED NOT_SUPPLIED MTHREADS_VISIBLE_DEVICES "
    "NVIDIA_VISIBLE_DEVICES MUSAFARM_VISIBLE_GPUS; do eval \"echo $v=\\${$v-unset}\"; done";

TEST_F(ExecExecutorTest, SecretsAreEnvironmentVariablesNeverArgv) {
  const std::string token = "tok-8c1f", url = "https://user:pw@example.com/musa.git";
  v1::Assignment a = Exec({kShowArgvAndEnv}, /*shell=*/true);
  for (const char* n : {"TOKEN", "MUSA_URL", "NOT_SUPPLIED"}) a.mutable_run()->add_secrets(n);
  (*a.mutable_run()->mutable_env())["TOKEN"] = "from-the-stage-env";
  (*a.mutable_secrets())["TOKEN"] = token;
  (*a.mutable_secrets())["MUSA_URL"] = url;
  (*a.mutable_secrets())["UNLISTED"] = "not-for-this-stage";
  Recorder r;
  auto exec = executor_.Start(a, dir_.string(), r.Callbacks());
  ASSERT_TRUE(exec.ok()) << exec.status();
  ASSERT_TRUE(r.Wait());
  const std::string out = r.Out();
  const std::string argv = out.substr(0, out.find('\n'));
  ASSERT_EQ(argv.rfind("argv:/bin/sh -c ", 0), 0u) << out;
  EXPECT_EQ(argv.find(token), std::string::npos) << argv;
  EXPECT_EQ(argv.find(url), std::string::npos) << argv;
  // The secret wins over the stage's env of the same name; only named,
  // supplied secrets are set.
  EXPECT_NE(out.find("\nTOKEN=" + token + "\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\nMUSA_URL=" + url + "\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\nUNLISTED=unset\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\nNOT_SUPPLIED=unset\n"), std::string::npos) << out;
  EXPECT_NE(out.find("\nMUSAFARM_VISIBLE_GPUS=unset\n"), std::string::npos) << out;
}

TEST_F(ExecExecutorTest, GivenGpusAreNamedInTheEnvironmentOverTheStagesOwn) {
  v1::Assignment a = Exec({kShowArgvAndEnv}, /*shell=*/true);
  (*a.mutable_run()->mutable_env())["MTHREADS_VISIBLE_DEVICES"] = "all";
  a.add_gpu_ids(1);
  a.add_gpu_ids(3);
  Recorder r;
  auto exec = executor_.Start(a, dir_.string(), r.Callbacks());
  ASSERT_TRUE(exec.ok()) << exec.status();
  ASSERT_TRUE(r.Wait());
  EXPECT_NE(r.Out().find("\nMTHREADS_VISIBLE_DEVICES=1,3\nNVIDIA_VISIBLE_DEVICES=unset\n"
                         "MUSAFARM_VISIBLE_GPUS=1,3\n"),
            std::string::npos)
      << r.Out();

  ExecExecutor nvidia(ExecOptions{absl::Seconds(2), {}, "nvidia"});
  Recorder rn;
  auto exec_n = nvidia.Start(a, dir_.string(), rn.Callbacks());
  ASSERT_TRUE(exec_n.ok()) << exec_n.status();
  ASSERT_TRUE(rn.Wait());
  EXPECT_NE(rn.Out().find("\nMTHREADS_VISIBLE_DEVICES=all\nNVIDIA_VISIBLE_DEVICES=1,3\n"
                          "MUSAFARM_VISIBLE_GPUS=1,3\n"),
            std::string::npos)
      << rn.Out();
}

TEST_F(ExecExecutorTest, BadSecretNameIsRefusedBeforeAnythingRuns) {
  v1::Assignment a = Exec({"touch ran"}, /*shell=*/true);
  a.mutable_run()->add_secrets("NOT-A-NAME");
  (*a.mutable_secrets())["NOT-A-NAME"] = "v";
  Recorder r;
  auto exec = executor_.Start(a, dir_.string(), r.Callbacks());
  EXPECT_EQ(exec.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "ran"));
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

// on_running (the agent's held Started, issue 19): called on the reaper's
// thread once the process has run for running_after, and never for one that
// ended sooner.
TEST_F(ExecExecutorTest, OnRunningComesAfterTheGivenTimeOnlyForAProcessStillRunning) {
  EXPECT_TRUE(executor_.ReportsRunning());
  Recorder slow;
  absl::Notification running;
  absl::Time started;
  absl::Time said;
  ExecCallbacks cb = slow.Callbacks();
  cb.running_after = absl::Milliseconds(30);
  cb.on_running = [&] {
    said = absl::Now();
    running.Notify();
  };
  started = absl::Now();
  auto exec = executor_.Start(Exec({"sleep", "600"}), dir_.string(), std::move(cb));
  ASSERT_TRUE(exec.ok()) << exec.status();
  ASSERT_TRUE(running.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_GE(said - started, absl::Milliseconds(30));
  EXPECT_FALSE(slow.done.HasBeenNotified());
  (*exec)->Cancel();
  ASSERT_TRUE(slow.done.WaitForNotificationWithTimeout(absl::Seconds(10)));

  Recorder quick;
  std::atomic<int> calls{0};
  cb = quick.Callbacks();
  cb.running_after = absl::Hours(1);
  cb.on_running = [&] { ++calls; };
  auto exec2 = executor_.Start(Exec({"true"}), dir_.string(), std::move(cb));
  ASSERT_TRUE(exec2.ok()) << exec2.status();
  ASSERT_TRUE(quick.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  exec2->reset();  // waits for its end on the reaper
  EXPECT_EQ(calls.load(), 0);
}

// While the agent has no room for output the pipe is not read, but the
// deadline and cancel still act on the (blocked) process.
TEST_F(ExecExecutorTest, WithoutRoomForOutputTheTaskBlocksYetTimeoutAndCancelStillWork) {
  for (bool cancel : {false, true}) {
    v1::Assignment a = Exec({"yes"});
    if (!cancel) a.mutable_run()->set_timeout_seconds(1);
    Recorder r;
    ExecCallbacks cb = r.Callbacks();
    std::atomic<int> asked{0};
    cb.wait_for_room = [&](absl::Duration timeout) {
      ++asked;
      absl::SleepFor(timeout);  // never any room
      return false;
    };
    pid_t leader = 0;
    cb.on_process = [&](pid_t pid) { leader = pid; };
    auto exec = executor_.Start(a, dir_.string(), std::move(cb));
    ASSERT_TRUE(exec.ok());
    EXPECT_GT(leader, 0) << "the process group is reported for the agent's state file";
    ASSERT_TRUE(r.WaitOutput("y\n"));
    if (cancel) (*exec)->Cancel();
    ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(20))) << "cancel " << cancel;
    EXPECT_EQ(r.exit.timed_out, !cancel);
    EXPECT_EQ(r.exit.cancelled, cancel);
    EXPECT_GT(asked.load(), 0);
    // `yes` writes as fast as it can: without the bound it would have written
    // far more by now than one read (1 MiB) before the room ran out and the
    // pipe's worth (1 MiB) taken once it is being stopped.
    EXPECT_LE(r.Out().size(), 4u << 20);
  }
}

TEST_F(ExecExecutorTest, RoomForOutputLetsEverythingThrough) {
  Recorder r;
  ExecCallbacks cb = r.Callbacks();
  std::atomic<int> calls{0};
  cb.wait_for_room = [&](absl::Duration) {
    return ++calls % 3 != 0;  // now and then no room, briefly
  };
  auto exec = executor_.Start(Exec({"sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"}),
                              dir_.string(), std::move(cb));
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(r.exit.exit_code, 0);
  EXPECT_EQ(r.Out(), std::string(3000000, 'x'));
}

// Issue 19: reads take no more than the room the agent has (read_room, its
// send lead's; here 200 KiB, then nothing), down to kMinOutputRead, so that output the agent cannot send
// yet waits in the pipe rather than a whole 1 MiB read past the bound.
TEST_F(ExecExecutorTest, ReadsTakeNoMoreThanTheRoomTheAgentHas) {
  Recorder r;
  ExecCallbacks cb = r.Callbacks();
  std::atomic<uint64_t> room{200 << 10};
  std::atomic<size_t> largest{0};
  cb.on_output = [&largest, inner = std::move(cb.on_output)](std::string d) mutable {
    largest = std::max(largest.load(), d.size());
    inner(std::move(d));
  };
  cb.read_room = [&room] { return room.exchange(1); };  // then 1 byte: the floor applies
  // No room for a while after the first output, so that the pipe fills (the
  // child writes 3 MB at once): a read that ignored the room would take all
  // of the pipe then.
  std::optional<absl::Time> first;
  cb.wait_for_room = [&first](absl::Duration) {
    if (!first) first = absl::Now();
    return absl::Now() - *first > absl::Milliseconds(300);
  };
  auto exec = executor_.Start(Exec({"sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' x"}),
                              dir_.string(), std::move(cb));
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(30)));
  EXPECT_EQ(r.Out(), std::string(3000000, 'x'));
  EXPECT_LE(largest.load(), size_t{200} << 10);
  EXPECT_GT(largest.load(), 0u);
}

TEST_F(ExecExecutorTest, MissingProgramIsAnErrorResult) {
  Recorder r;
  auto exec = executor_.Start(Exec({"/nonexistent/prog"}), dir_.string(), r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_NE(r.exit.error.find("/nonexistent/prog"), std::string::npos);
  EXPECT_NE(r.Out().find("cannot run"), std::string::npos);
}

TEST_F(ExecExecutorTest, CollectsWhatTheShellStageWroteEvenWhenItFails) {
  v1::Assignment a = Exec({"mkdir -p out && echo '<testsuite/>' > out/junit.xml && exit 1"}, true);
  a.mutable_run()->mutable_exec()->add_collect("out/junit.xml");
  a.mutable_run()->mutable_exec()->add_collect("absent.txt");
  Recorder r;
  auto exec = executor_.Start(a, dir_.string(), r.Callbacks());
  ASSERT_TRUE(exec.ok()) << exec.status();
  ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_EQ(r.exit.exit_code, 1);
  ASSERT_EQ(r.exit.files.size(), 1u);
  EXPECT_EQ(r.exit.files[0].name, "junit.xml");
  EXPECT_EQ(r.exit.files[0].source, "out/junit.xml");
  EXPECT_EQ(r.exit.files[0].host_path, (dir_ / "artifacts" / "junit.xml").string());
  EXPECT_NE(r.Out().find("not collecting absent.txt: not found in the work dir"), std::string::npos)
      << r.Out();
}

TEST_F(ExecExecutorTest, ACancelledStageCollectsNothing) {
  v1::Assignment a = Exec({"echo x > r.xml; echo started; exec sleep 30"}, true);
  a.mutable_run()->mutable_exec()->add_collect("r.xml");
  Recorder r;
  auto exec = executor_.Start(a, dir_.string(), r.Callbacks());
  ASSERT_TRUE(exec.ok()) << exec.status();
  ASSERT_TRUE(r.WaitOutput("started"));
  (*exec)->Cancel();
  ASSERT_TRUE(r.done.WaitForNotificationWithTimeout(absl::Seconds(10)));
  EXPECT_TRUE(r.exit.cancelled);
  EXPECT_TRUE(r.exit.files.empty());
}

size_t ThreadsOfThisProcess() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// One thread supervises every running attempt (ProcessReaper): each still
// gets its own output and exit, in order.
TEST_F(ExecExecutorTest, ManyAttemptsAtOnceKeepTheirOwnOutputAndExit) {
  constexpr int kAttempts = 12;
  std::vector<std::unique_ptr<Recorder>> recorders;
  std::vector<std::unique_ptr<Execution>> running;
  for (int i = 0; i < kAttempts; ++i) {
    recorders.push_back(std::make_unique<Recorder>());
    auto exec = executor_.Start(
        Exec({"echo start " + std::to_string(i) + "; sleep 0.2; echo end " + std::to_string(i) +
              "; exit " + std::to_string(i)},
             true),
        dir_.string(), recorders.back()->Callbacks());
    ASSERT_TRUE(exec.ok()) << exec.status();
    running.push_back(*std::move(exec));
  }
  for (int i = 0; i < kAttempts; ++i) {
    ASSERT_TRUE(recorders[i]->WaitOutput("start " + std::to_string(i) + "\n"));
  }
  for (int i = 0; i < kAttempts; ++i) {
    ASSERT_TRUE(recorders[i]->Wait());
    EXPECT_EQ(recorders[i]->Out(),
              "start " + std::to_string(i) + "\nend " + std::to_string(i) + "\n");
    EXPECT_EQ(recorders[i]->exit.exit_code, i);
  }
}

// No thread per attempt: while attempts run, the process has the threads it
// had with the executor alone (whose reaper thread runs from the start).
TEST_F(ExecExecutorTest, RunningAttemptsStartNoThreads) {
  const size_t before = ThreadsOfThisProcess();
  std::vector<std::unique_ptr<Recorder>> recorders;
  std::vector<std::unique_ptr<Execution>> running;
  for (int i = 0; i < 8; ++i) {
    recorders.push_back(std::make_unique<Recorder>());
    auto exec = executor_.Start(Exec({"echo up; exec sleep 600"}, true), dir_.string(),
                                recorders.back()->Callbacks());
    ASSERT_TRUE(exec.ok()) << exec.status();
    running.push_back(*std::move(exec));
  }
  for (auto& r : recorders) ASSERT_TRUE(r->WaitOutput("up\n"));
  EXPECT_LE(ThreadsOfThisProcess(), before);
  for (auto& e : running) e->Cancel();
  for (auto& r : recorders) {
    ASSERT_TRUE(r->Wait());
    EXPECT_TRUE(r->exit.cancelled);
    EXPECT_EQ(r->exit.signal, SIGTERM);
  }
}

// The executor may go first: it stops what still runs, and the executions
// it handed out stay safe to cancel and destroy.
TEST_F(ExecExecutorTest, DestroyingTheExecutorStopsWhatRunsAndLeavesExecutionsValid) {
  Recorder r;
  std::unique_ptr<Execution> exec;
  {
    ExecExecutor executor{ExecOptions{absl::Seconds(2), {}, ""}};
    auto started = executor.Start(Exec({"echo up; exec sleep 600"}, true), dir_.string(),
                                  r.Callbacks());
    ASSERT_TRUE(started.ok()) << started.status();
    exec = *std::move(started);
    ASSERT_TRUE(r.WaitOutput("up\n"));
  }
  ASSERT_TRUE(r.done.HasBeenNotified());
  EXPECT_TRUE(r.exit.cancelled);
  exec->Cancel();
  exec.reset();
}

}  // namespace
}  // namespace musafarm::agent
