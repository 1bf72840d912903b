#include "agent/agent_state.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

class AgentStateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("mf-state-", ::getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "agent-state").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  static AgentState Sample() {
    AgentState s;
    s.agent = "gpu-07";
    RecordedAttempt exec;
    exec.task_id = "7/dev-3.9 x\ty/test";  // tabs and spaces survive
    exec.attempt_id = 12;
    exec.kind = "exec";
    exec.processes = {{4242, 991122}};
    RecordedAttempt run;
    run.task_id = "7/dev/run";
    run.attempt_id = 13;
    run.kind = "docker_run";
    run.container = "musafarm-13";
    run.processes = {{5000, 1}, {5003, 2}};
    RecordedAttempt build;
    build.task_id = "7/dev/base";
    build.attempt_id = 14;
    build.kind = "docker_build";
    build.images = {"reg/app:dev", "reg/app:latest"};
    RecordedAttempt done;
    done.task_id = "7/dev/ut";
    done.attempt_id = 15;
    done.kind = "docker_run";
    done.finished = true;
    done.spool_path = "/w/spool/7_dev_ut-15.log";
    done.log_base = 4096;
    done.log_total = 10000;
    done.result_path = "/w/spool/7_dev_ut-15.result";
    done.files = {{"ut_output.txt", "/w/tasks/7_dev_ut-15/artifacts/ut_output.txt", "/out/ut.txt"}};
    s.attempts = {exec, run, build, done};
    return s;
  }

  // A fake /proc: PID/stat files with the given group, state and start time.
  void FakeProc(int64_t pid, int64_t pgrp, uint64_t start, char state = 'S') {
    fs::create_directories(dir_ / "proc" / absl::StrCat(pid));
    std::ofstream(dir_ / "proc" / absl::StrCat(pid) / "stat")
        << pid << " (sleep (odd) name) " << state << " 1 " << pgrp
        << " 1 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 " << start
        << " 8192000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";
  }
  std::string Proc() { return (dir_ / "proc").string(); }

  fs::path dir_;
  std::string path_;
};

TEST_F(AgentStateTest, RoundTripThroughTheFile) {
  const AgentState s = Sample();
  ASSERT_TRUE(WriteAgentStateFile(path_, s).ok());
  absl::StatusOr<AgentState> back = ReadAgentStateFile(path_);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, s);
  // An empty state round-trips too (what a fresh agent writes).
  ASSERT_TRUE(WriteAgentStateFile(path_, AgentState{"a1", {}}).ok());
  back = ReadAgentStateFile(path_);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->agent, "a1");
  EXPECT_THAT(back->attempts, IsEmpty());
}

TEST_F(AgentStateTest, MissingFileIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(ReadAgentStateFile(path_).status()));
}

TEST_F(AgentStateTest, WriteReplacesAtomicallyAndLeavesNoTemporaryFile) {
  ASSERT_TRUE(WriteAgentStateFile(path_, Sample()).ok());
  // A crash while writing the next state leaves a partial temporary file:
  // the state itself is the complete old one.
  std::ofstream(path_ + ".part") << "musafarm-agent-state\t1\nattempt\t7/x";
  absl::StatusOr<AgentState> read = ReadAgentStateFile(path_);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, Sample());
  // The next write goes through (over the stale temporary file) and cleans up.
  AgentState next;
  next.agent = "gpu-07";
  ASSERT_TRUE(WriteAgentStateFile(path_, next).ok());
  EXPECT_FALSE(fs::exists(path_ + ".part"));
  read = ReadAgentStateFile(path_);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, next);
}

TEST_F(AgentStateTest, WriteIntoAMissingDirectoryFailsAndLeavesTheOldStateAlone) {
  ASSERT_TRUE(WriteAgentStateFile(path_, Sample()).ok());
  EXPECT_FALSE(WriteAgentStateFile((dir_ / "gone" / "agent-state").string(), Sample()).ok());
  EXPECT_EQ(*ReadAgentStateFile(path_), Sample());
}

TEST_F(AgentStateTest, CorruptFilesAreDataLossNotGuesses) {
  for (const std::string& text : {std::string(""), std::string("hello\n"),
                                  std::string("musafarm-agent-state\t1\nprocess\t12\t3\n"),
                                  std::string("musafarm-agent-state\t1\nattempt\tt\tx\texec\n"),
                                  std::string("musafarm-agent-state\t1\nattempt\tt\t1\texec\n"
                                              "process\t1\t5\n"),  // pid 1: never ours
                                  std::string("musafarm-agent-state\t2\n")}) {
    std::ofstream(path_, std::ios::trunc) << text;
    absl::StatusOr<AgentState> s = ReadAgentStateFile(path_);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << text;
  }
}

TEST_F(AgentStateTest, ParsesProcStatWithAwkwardCommandNames) {
  auto st = ParseProcStat(
      "4242 (a) b) (c) S 1 4240 4240 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 8192000 200 "
      "18446744073709551615\n");
  ASSERT_TRUE(st.has_value());
  EXPECT_EQ(st->state, 'S');
  EXPECT_EQ(st->pgrp, 4240);
  EXPECT_EQ(st->start_time, 987654u);
  EXPECT_FALSE(ParseProcStat("4242 (x) S 1 2").has_value());
}

TEST_F(AgentStateTest, RecoveryTakesTheLiveGroupOfTheRecordedLeader) {
  FakeProc(100, 100, 5000);       // the leader, as recorded
  FakeProc(101, 100, 5001);       // its child
  FakeProc(102, 100, 5002, 'Z');  // a zombie: nothing to kill
  FakeProc(200, 200, 4000);       // someone else
  FakeProc(300, 100, 4999);       // in a group 100 that existed before ours: not ours
  EXPECT_THAT(LeftoverProcesses({100, 5000}, Proc()), ElementsAre(100, 101));
}

TEST_F(AgentStateTest, RecoveryLeavesAReusedPidAlone) {
  FakeProc(100, 100, 7000);  // pid 100 now belongs to a process started later
  FakeProc(101, 100, 7001);
  EXPECT_THAT(LeftoverProcesses({100, 5000}, Proc()), IsEmpty());
}

TEST_F(AgentStateTest, RecoveryFindsMembersThatOutlivedTheirLeader) {
  FakeProc(101, 100, 5001);  // the leader 100 exited; its child lives on in the group
  EXPECT_THAT(LeftoverProcesses({100, 5000}, Proc()), ElementsAre(101));
}

TEST_F(AgentStateTest, NothingRecordedIsStillRunning) {
  fs::create_directories(dir_ / "proc");
  EXPECT_THAT(LeftoverProcesses({100, 5000}, Proc()), IsEmpty());
  EXPECT_THAT(LeftoverProcesses({0, 0}, "/proc"), IsEmpty()) << "pid 0 is never a group to kill";
}

// The real thing: a process group (a shell and its sleeping child) that an
// earlier run started is found by its recorded leader and killed, whole.
TEST_F(AgentStateTest, KillsARealLeftoverGroupButNotAfterItsPidWasReused) {
  Child child = Spawn({"sh", "-c", "sleep 600 & sleep 600; wait"}, InheritedEnv(), "");
  ASSERT_TRUE(child.error.empty()) << child.error;
  ::close(child.fd);
  std::optional<ProcStat> leader = ReadProcStat(child.pid);
  ASSERT_TRUE(leader.has_value());
  const RecordedProcess recorded{child.pid, leader->start_time};
  // Wait until both sleeps run in the group.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (LeftoverProcesses(recorded).size() < 3 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(LeftoverProcesses(recorded).size(), 3u);
  // A record with another start time is a different process: untouched.
  EXPECT_THAT(KillLeftoverProcesses({child.pid, leader->start_time + 1}), IsEmpty());
  EXPECT_EQ(::kill(child.pid, 0), 0);
  const std::vector<int64_t> killed = KillLeftoverProcesses(recorded);
  EXPECT_EQ(killed.size(), 3u);
  EXPECT_THAT(LeftoverProcesses(recorded), IsEmpty());
  int status = 0;
  ASSERT_EQ(::waitpid(child.pid, &status, 0), child.pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

}  // namespace
}  // namespace musafarm::agent
