#include "agent/agent_state.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/durable_record.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

namespace fs = std::filesystem;

RecordedProcess Rec(int64_t pid, uint64_t start_time) {
  RecordedProcess p;
  p.set_pid(pid);
  p.set_start_time(start_time);
  return p;
}

MATCHER_P(EqualsProto, want, "") {
  return google::protobuf::util::MessageDifferencer::Equals(arg, want);
}
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
    path_ = (dir_ / kAgentStateFile).string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  static AgentState Sample() {
    AgentState s;
    s.set_agent("gpu-07");
    RecordedAttempt* exec = s.add_attempts();
    exec->set_task_id("7/dev-3.9 x\ty/test");  // tabs and spaces survive
    exec->set_attempt_id(12);
    exec->set_kind("exec");
    *exec->add_processes() = Rec(4242, 991122);
    RecordedAttempt* run = s.add_attempts();
    run->set_task_id("7/dev/run");
    run->set_attempt_id(13);
    run->set_kind("docker_run");
    run->set_container("musafarm-13");
    *run->add_processes() = Rec(5000, 1);
    *run->add_processes() = Rec(5003, 2);
    RecordedAttempt* build = s.add_attempts();
    build->set_task_id("7/dev/base");
    build->set_attempt_id(14);
    build->set_kind("docker_build");
    build->add_images("reg/app:dev");
    build->add_images("reg/app:latest");
    RecordedAttempt* done = s.add_attempts();
    done->set_task_id("7/dev/ut");
    done->set_attempt_id(15);
    done->set_kind("docker_run");
    done->set_finished(true);
    done->set_spool_path("/w/spool/7_dev_ut-15.log");
    done->set_log_base(4096);
    done->set_log_total(10000);
    done->set_result_path("/w/spool/7_dev_ut-15.result");
    RecordedFile* f = done->add_files();
    f->set_name("ut_output.txt");
    f->set_host_path("/w/tasks/7_dev_ut-15/artifacts/ut_output.txt");
    f->set_source("/out/ut.txt");
    s.set_version(kAgentStateVersion);  // what a read gives back
    return s;
  }
  // What an agent before the proto wrote for Sample().
  static std::string LegacySample() {
    return "musafarm-agent-state\t1\n"
           "agent\tgpu-07\n"
           "attempt\t7/dev-3.9 x\\ty/test\t12\texec\n"
           "process\t4242\t991122\n"
           "attempt\t7/dev/run\t13\tdocker_run\n"
           "process\t5000\t1\n"
           "process\t5003\t2\n"
           "container\tmusafarm-13\n"
           "attempt\t7/dev/base\t14\tdocker_build\n"
           "image\treg/app:dev\n"
           "image\treg/app:latest\n"
           "attempt\t7/dev/ut\t15\tdocker_run\n"
           "finished\t/w/spool/7_dev_ut-15.log\t4096\t10000\t/w/spool/7_dev_ut-15.result\n"
           "file\tut_output.txt\t/w/tasks/7_dev_ut-15/artifacts/ut_output.txt\t/out/ut.txt\n";
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
  EXPECT_THAT(*back, EqualsProto(s));
  // An empty state round-trips too (what a fresh agent writes).
  AgentState empty;
  empty.set_agent("a1");
  ASSERT_TRUE(WriteAgentStateFile(path_, empty).ok());
  back = ReadAgentStateFile(path_);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->agent(), "a1");
  EXPECT_THAT(back->attempts(), IsEmpty());
}

TEST_F(AgentStateTest, TheLegacyTextReadsAsTheSameState) {
  absl::StatusOr<AgentState> parsed = ParseLegacyAgentState(LegacySample());
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_THAT(*parsed, EqualsProto(Sample()));
}

TEST_F(AgentStateTest, LoadPrefersTheProtoAndFallsBackToTheLegacyTextOnce) {
  const std::string work = dir_.string();
  bool legacy = true;
  EXPECT_TRUE(absl::IsNotFound(LoadAgentState(work, &legacy).status()));
  // An agent upgraded in place: only the old text is there.
  std::ofstream(dir_ / kLegacyAgentStateFile) << LegacySample();
  absl::StatusOr<AgentState> got = LoadAgentState(work, &legacy);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE(legacy);
  EXPECT_THAT(*got, EqualsProto(Sample()));
  // Once the new file is written it wins, legacy file or not.
  AgentState now;
  now.set_agent("gpu-07");
  ASSERT_TRUE(WriteAgentStateFile(path_, now).ok());
  got = LoadAgentState(work, &legacy);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(legacy);
  EXPECT_THAT(got->attempts(), IsEmpty());
}

// The visible state lives in its own slots (written without fdatasync, no
// rename): it wins over an earlier agent's kAgentStateFile and an older
// durable state, and a torn or emptied pair of slots falls back to them.
TEST_F(AgentStateTest, LoadPrefersTheVisibleSlotsWhenNewest) {
  const std::string work = dir_.string();
  DurableRecord visible(work + "/" + kVisibleAgentState);
  DurableRecord durable(work + "/" + kDurableAgentState);
  auto state = [](const std::string& agent, uint64_t sequence) {
    AgentState s;
    s.set_agent(agent);
    s.set_sequence(sequence);
    return *SerializeAgentState(s);
  };
  AgentState file_state;
  file_state.set_agent("earlier agent's file");
  file_state.set_sequence(3);
  ASSERT_TRUE(WriteAgentStateFile(path_, file_state).ok());
  ASSERT_TRUE(durable.Write(state("durable", 4)).ok());
  ASSERT_TRUE(visible.Write(state("visible", 5), DurableRecord::Sync::kVisible).ok());
  bool legacy = true;
  absl::StatusOr<AgentState> got = LoadAgentState(work, &legacy);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->agent(), "visible");
  EXPECT_EQ(ReadVisibleAgentState(work)->agent(), "visible");
  // A machine crash emptied both slots: the durable state.
  std::ofstream(work + "/" + kVisibleAgentState + ".0", std::ios::trunc).close();
  std::ofstream(work + "/" + kVisibleAgentState + ".1", std::ios::trunc).close();
  EXPECT_TRUE(absl::IsNotFound(ReadVisibleAgentState(work).status()));
  got = LoadAgentState(work, &legacy);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->agent(), "durable");
}

// Issue 19: the state is written at every change without fsync
// (kAgentStateFile) and with fdatasync when it must survive a machine crash
// (kDurableAgentState's slots; kOldDurableAgentStateFile before them). The
// newest that parses is the state; a visible file a machine crash left empty,
// or older than the durable state, loses.
TEST_F(AgentStateTest, LoadTakesTheNewestOfTheVisibleAndTheDurableStates) {
  const std::string work = dir_.string();
  const std::string old_durable = (dir_ / kOldDurableAgentStateFile).string();
  DurableRecord durable(work + "/" + kDurableAgentState);
  auto write_durable = [&durable](const AgentState& state) {
    absl::StatusOr<std::string> bytes = SerializeAgentState(state);
    return bytes.ok() && durable.Write(*bytes).ok();
  };
  AgentState visible_state;
  visible_state.set_agent("visible");
  visible_state.set_sequence(5);
  AgentState durable_state;
  durable_state.set_agent("durable");
  durable_state.set_sequence(4);
  AgentState old_state;  // an agent before the slots wrote it, before an upgrade
  old_state.set_agent("old durable");
  old_state.set_sequence(3);
  ASSERT_TRUE(WriteAgentStateFile(path_, visible_state).ok());
  ASSERT_TRUE(write_durable(durable_state));
  ASSERT_TRUE(WriteAgentStateFile(old_durable, old_state).ok());
  bool legacy = true;
  absl::StatusOr<AgentState> got = LoadAgentState(work, &legacy);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_FALSE(legacy);
  EXPECT_EQ(got->agent(), "visible");
  // A machine crash kept an older visible file than the durable state.
  durable_state.set_sequence(6);
  ASSERT_TRUE(write_durable(durable_state));
  got = LoadAgentState(work, &legacy);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->agent(), "durable");
  EXPECT_EQ(ReadDurableAgentState(work)->agent(), "durable");
  // ... or an empty one.
  std::ofstream(path_, std::ios::trunc).close();
  got = LoadAgentState(work, &legacy);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->agent(), "durable");
  // Only the durable state.
  fs::remove(path_);
  got = LoadAgentState(work, &legacy);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->agent(), "durable");
  // Upgraded from an agent before the slots: its durable file is newer.
  old_state.set_sequence(7);
  ASSERT_TRUE(WriteAgentStateFile(old_durable, old_state).ok());
  got = LoadAgentState(work, &legacy);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->agent(), "old durable");
  // Nothing parses: DataLoss, not a guess.
  fs::remove(work + "/" + kDurableAgentState + ".0");
  fs::remove(work + "/" + kDurableAgentState + ".1");
  std::ofstream(old_durable, std::ios::trunc) << "garbage";
  std::ofstream(path_, std::ios::trunc).close();
  EXPECT_TRUE(absl::IsDataLoss(LoadAgentState(work, &legacy).status()));
}

TEST_F(AgentStateTest, MissingFileIsNotFound) {
  EXPECT_TRUE(absl::IsNotFound(ReadAgentStateFile(path_).status()));
}

TEST_F(AgentStateTest, WriteReplacesAtomicallyAndLeavesNoTemporaryFile) {
  ASSERT_TRUE(WriteAgentStateFile(path_, Sample()).ok());
  // A crash while writing the next state leaves a partial temporary file:
  // the state itself is the complete old one.
  std::ofstream(path_ + ".part") << Sample().SerializeAsString().substr(0, 20);
  absl::StatusOr<AgentState> read = ReadAgentStateFile(path_);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_THAT(*read, EqualsProto(Sample()));
  // The next write goes through (over the stale temporary file) and cleans up.
  AgentState next;
  next.set_agent("gpu-07");
  ASSERT_TRUE(WriteAgentStateFile(path_, next).ok());
  EXPECT_FALSE(fs::exists(path_ + ".part"));
  read = ReadAgentStateFile(path_);
  ASSERT_TRUE(read.ok());
  next.set_version(kAgentStateVersion);
  EXPECT_THAT(*read, EqualsProto(next));
}

TEST_F(AgentStateTest, WriteIntoAMissingDirectoryFailsAndLeavesTheOldStateAlone) {
  ASSERT_TRUE(WriteAgentStateFile(path_, Sample()).ok());
  EXPECT_FALSE(WriteAgentStateFile((dir_ / "gone" / kAgentStateFile).string(), Sample()).ok());
  EXPECT_THAT(*ReadAgentStateFile(path_), EqualsProto(Sample()));
}

TEST_F(AgentStateTest, CorruptFilesAreDataLossNotGuesses) {
  AgentState pid1 = Sample();
  pid1.mutable_attempts(0)->mutable_processes(0)->set_pid(1);  // pid 1: never ours
  AgentState newer = Sample();
  newer.set_version(kAgentStateVersion + 1);
  for (const std::string& bytes :
       {std::string(""), std::string("hello\n"), Sample().SerializeAsString().substr(0, 30),
        pid1.SerializeAsString(), newer.SerializeAsString()}) {
    std::ofstream(path_, std::ios::binary | std::ios::trunc) << bytes;
    absl::StatusOr<AgentState> s = ReadAgentStateFile(path_);
    EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << absl::CEscape(bytes);
  }
  // The legacy text, as before.
  fs::remove(path_);
  for (const std::string& text : {std::string(""), std::string("hello\n"),
                                  std::string("musafarm-agent-state\t1\nprocess\t12\t3\n"),
                                  std::string("musafarm-agent-state\t1\nattempt\tt\tx\texec\n"),
                                  std::string("musafarm-agent-state\t1\nattempt\tt\t1\texec\n"
                                              "process\t1\t5\n"),  // pid 1: never ours
                                  std::string("musafarm-agent-state\t2\n")}) {
    std::ofstream(dir_ / kLegacyAgentStateFile, std::ios::trunc) << text;
    bool legacy = false;
    absl::StatusOr<AgentState> s = LoadAgentState(dir_.string(), &legacy);
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
  EXPECT_THAT(LeftoverProcesses(Rec(100, 5000), Proc()), ElementsAre(100, 101));
}

TEST_F(AgentStateTest, RecoveryLeavesAReusedPidAlone) {
  FakeProc(100, 100, 7000);  // pid 100 now belongs to a process started later
  FakeProc(101, 100, 7001);
  EXPECT_THAT(LeftoverProcesses(Rec(100, 5000), Proc()), IsEmpty());
}

TEST_F(AgentStateTest, RecoveryFindsMembersThatOutlivedTheirLeader) {
  FakeProc(101, 100, 5001);  // the leader 100 exited; its child lives on in the group
  EXPECT_THAT(LeftoverProcesses(Rec(100, 5000), Proc()), ElementsAre(101));
}

TEST_F(AgentStateTest, AttemptProcessesAreFoundByTheirEnvironmentWithTheirGroup) {
  auto env = [&](int64_t pid, const std::string& vars) {
    std::ofstream(dir_ / "proc" / absl::StrCat(pid) / "environ", std::ios::binary) << vars;
  };
  auto vars = [](const std::string& task, int attempt, const std::string& dir) {
    return absl::StrCat("PATH=/bin", std::string(1, '\0'), "MUSAFARM_TASK_ID=", task,
                        std::string(1, '\0'), "MUSAFARM_ATTEMPT_ID=", attempt,
                        std::string(1, '\0'), "MUSAFARM_WORKDIR=", dir, std::string(1, '\0'));
  };
  FakeProc(100, 100, 5000);  // the stage's shell
  env(100, vars("7/a", 3, "/w/tasks/7_a-3"));
  FakeProc(101, 100, 5001);  // its child, which cleared its environment
  env(101, "");
  FakeProc(102, 100, 5002, 'Z');  // a zombie: nothing to kill
  env(102, vars("7/a", 3, "/w/tasks/7_a-3"));
  FakeProc(200, 200, 6000);  // the same task's next attempt
  env(200, vars("7/a", 4, "/w/tasks/7_a-4"));
  FakeProc(300, 300, 6000);  // another task, same attempt number; a prefix of the id
  env(300, vars("7/ab", 3, "/w/tasks/7_ab-3"));
  FakeProc(400, 400, 6000);  // another agent (or farm) on this host: same ids, its own work dir
  env(400, vars("7/a", 3, "/other/tasks/7_a-3"));
  FakeProc(500, 500, 6000);  // someone else, no environment readable
  EXPECT_THAT(AttemptProcesses("7/a", 3, "/w/tasks/7_a-3", Proc()), ElementsAre(100, 101));
  EXPECT_THAT(AttemptProcesses("7/a", 4, "/w/tasks/7_a-4", Proc()), ElementsAre(200));
  EXPECT_THAT(AttemptProcesses("7/a", 5, "/w/tasks/7_a-5", Proc()), IsEmpty());
  EXPECT_THAT(AttemptProcesses("7/a", 3, "/other/tasks/7_a-3", Proc()), ElementsAre(400));
}

// The real thing, the way an agent killed right after the spawn leaves it:
// nothing recorded, but the attempt's shell and its child are found and killed.
TEST_F(AgentStateTest, KillsARealAttemptsProcessesFoundByEnvironment) {
  EnvMap env = InheritedEnv();
  const std::string task = absl::StrCat("env-test/", ::getpid());
  const std::string workdir = (dir_ / "tasks" / "t-9").string();
  env["MUSAFARM_TASK_ID"] = task;
  env["MUSAFARM_ATTEMPT_ID"] = "9";
  env["MUSAFARM_WORKDIR"] = workdir;
  Child child = Spawn({"sh", "-c", "env -i sleep 600 & sleep 600; wait"}, env, "");
  ASSERT_TRUE(child.error.empty()) << child.error;
  ::close(child.fd);
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (AttemptProcesses(task, 9, workdir).size() < 3 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  const std::vector<int64_t> found = AttemptProcesses(task, 9, workdir);
  ASSERT_EQ(found.size(), 3u);
  EXPECT_THAT(AttemptProcesses(task, 8, workdir), IsEmpty());
  EXPECT_THAT(AttemptProcesses(task, 9, workdir + "-elsewhere"), IsEmpty());
  KillProcesses(found);
  EXPECT_THAT(AttemptProcesses(task, 9, workdir), IsEmpty());
  int status = 0;
  ASSERT_EQ(::waitpid(child.pid, &status, 0), child.pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

TEST_F(AgentStateTest, NothingRecordedIsStillRunning) {
  fs::create_directories(dir_ / "proc");
  EXPECT_THAT(LeftoverProcesses(Rec(100, 5000), Proc()), IsEmpty());
  EXPECT_THAT(LeftoverProcesses(Rec(0, 0), "/proc"), IsEmpty()) << "pid 0 is never a group to kill";
}

// The real thing: a process group (a shell and its sleeping child) that an
// earlier run started is found by its recorded leader and killed, whole.
TEST_F(AgentStateTest, KillsARealLeftoverGroupButNotAfterItsPidWasReused) {
  Child child = Spawn({"sh", "-c", "sleep 600 & sleep 600; wait"}, InheritedEnv(), "");
  ASSERT_TRUE(child.error.empty()) << child.error;
  ::close(child.fd);
  std::optional<ProcStat> leader = ReadProcStat(child.pid);
  ASSERT_TRUE(leader.has_value());
  const RecordedProcess recorded = Rec(child.pid, leader->start_time);
  // Wait until both sleeps run in the group.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (LeftoverProcesses(recorded).size() < 3 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_EQ(LeftoverProcesses(recorded).size(), 3u);
  // A record with another start time is a different process: untouched.
  EXPECT_THAT(KillLeftoverProcesses(Rec(child.pid, leader->start_time + 1)), IsEmpty());
  EXPECT_EQ(::kill(child.pid, 0), 0);
  const std::vector<int64_t> killed = KillLeftoverProcesses(recorded);
  EXPECT_EQ(killed.size(), 3u);
  EXPECT_THAT(LeftoverProcesses(recorded), IsEmpty());
  int status = 0;
  ASSERT_EQ(::waitpid(child.pid, &status, 0), child.pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

// The start time the agent records without reading /proc: a process forked
// between two reads of BootTicksNow that agree started in that tick, as /proc
// says. Spawned until enough such pairs were seen (a pair that straddles a tick
// is the case the agent reads /proc for).
TEST_F(AgentStateTest, AProcessForkedWithinOneBootTickStartedInThatTick) {
  int agreed = 0;
  for (int i = 0; i < 200 && agreed < 20; ++i) {
    const uint64_t before = BootTicksNow();
    ASSERT_GT(before, 0u);
    Child child = Spawn({"sleep", "5"}, InheritedEnv(), "");
    const uint64_t after = BootTicksNow();
    ASSERT_TRUE(child.error.empty()) << child.error;
    ::close(child.fd);
    std::optional<ProcStat> st = ReadProcStat(child.pid);
    ::kill(child.pid, SIGKILL);
    int status = 0;
    ::waitpid(child.pid, &status, 0);
    ASSERT_TRUE(st.has_value());
    EXPECT_LE(before, st->start_time);
    EXPECT_GE(after, st->start_time);
    if (before == after) {
      EXPECT_EQ(st->start_time, before);
      ++agreed;
    }
  }
  EXPECT_EQ(agreed, 20);
}

}  // namespace
}  // namespace musafarm::agent
