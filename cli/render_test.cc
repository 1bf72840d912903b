#include "cli/render.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::cli {
namespace {

using ::testing::ElementsAre;

constexpr int64_t kT0 = 1'700'000'000'000'000;  // unix microseconds
const absl::Time kNow = absl::FromUnixMicros(kT0) + absl::Seconds(100);

v1::Task MakeTask(const std::string& id, v1::TaskState state, const std::string& agent = "",
                  int64_t started_s = 0, int64_t ended_s = 0) {
  v1::Task t;
  t.set_id(id);
  t.set_job_id(JobIdOf(id));
  t.set_state(state);
  t.set_agent(agent);
  if (started_s) t.set_started_us(kT0 + started_s * 1'000'000);
  if (ended_s) t.set_ended_us(kT0 + ended_s * 1'000'000);
  return t;
}

TEST(HumanDurationTest, PicksUnitsByMagnitude) {
  EXPECT_EQ(HumanDuration(absl::Milliseconds(850)), "850ms");
  EXPECT_EQ(HumanDuration(absl::Milliseconds(4250)), "4.2s");
  EXPECT_EQ(HumanDuration(absl::Seconds(42)), "42s");
  EXPECT_EQ(HumanDuration(absl::Seconds(185)), "3m05s");
  EXPECT_EQ(HumanDuration(absl::Minutes(123)), "2h03m");
  EXPECT_EQ(HumanDuration(absl::Hours(76)), "3d04h");
  EXPECT_EQ(HumanDuration(-absl::Seconds(3)), "0s");
  EXPECT_EQ(HumanDuration(absl::ZeroDuration()), "0s");
}

TEST(FormatAgoTest, NeverAndAgo) {
  EXPECT_EQ(FormatAgo(absl::UnixEpoch(), kNow), "never");
  EXPECT_EQ(FormatAgo(kNow - absl::Milliseconds(12'300), kNow), "12s ago");
  EXPECT_EQ(FormatAgo(kNow, kNow), "just now");
  EXPECT_EQ(FormatAgo(kNow - absl::Seconds(125), kNow), "2m05s ago");
}

TEST(StateNamesTest, Lowercase) {
  EXPECT_EQ(TaskStateName(v1::TASK_STATE_RUNNING), "running");
  EXPECT_EQ(TaskStateName(v1::TASK_STATE_SKIPPED), "skipped");
  EXPECT_EQ(TaskStateName(v1::TASK_STATE_TIMED_OUT), "timed_out");
  EXPECT_EQ(JobStateName(v1::JOB_STATE_CANCELLED), "cancelled");
  EXPECT_EQ(AgentStateName(v1::AGENT_STATE_DRAINING), "draining");
}

TEST(AgentStatusTest, DrainingFlag) {
  v1::Agent a;
  a.set_state(v1::AGENT_STATE_CONNECTED);
  EXPECT_EQ(AgentStatus(a), "connected");
  a.set_draining(true);
  EXPECT_EQ(AgentStatus(a), "draining");
  a.set_state(v1::AGENT_STATE_DISCONNECTED);
  EXPECT_EQ(AgentStatus(a), "disconnected (draining)");
  a.set_state(v1::AGENT_STATE_DRAINING);
  EXPECT_EQ(AgentStatus(a), "draining");
}

TEST(AgentStatusTest, RevokedWinsOverEveryState) {
  v1::Agent a;
  a.set_state(v1::AGENT_STATE_DISCONNECTED);
  a.set_draining(true);
  a.set_revoked(true);
  EXPECT_EQ(AgentStatus(a), "revoked");
}

TEST(TaskIdTest, SplitsJobAndTask) {
  EXPECT_EQ(ShortTaskId("7/dev-3.8/base"), "dev-3.8/base");
  EXPECT_EQ(ShortTaskId("7"), "7");
  EXPECT_EQ(JobIdOf("7/dev-3.8/base"), "7");
  EXPECT_EQ(JobIdOf("12"), "12");
}

TEST(RenderTableTest, AlignsColumnsWithoutTrailingBlanks) {
  EXPECT_THAT(RenderTable({"ID", "NAME", "STATE"},
                          {{"7", "nightly-build", "running"}, {"12", "x", ""}, {"3"}}),
              ElementsAre("ID  NAME           STATE",    //
                          "7   nightly-build  running",  //
                          "12  x              -",        //
                          "3   -              -"));
}

TEST(RenderTableTest, MeasuresUtf8ByCodePoints) {
  EXPECT_THAT(RenderTable({"A", "B"}, {{"é", "x"}, {"ab", "y"}}),
              ElementsAre("A   B", "é   x", "ab  y"));
}

TEST(RenderStatusTest, HeaderAndOneTask) {
  v1::Job job;
  job.set_id("7");
  job.set_name("nightly");
  job.set_state(v1::JOB_STATE_FAILED);
  job.set_created_us(kT0);
  job.set_ended_us(kT0 + 65'000'000);
  v1::Task ok = MakeTask("7/dev-3.8/base", v1::TASK_STATE_SUCCEEDED, "a1", 1, 31);
  ok.set_attempts(1);
  v1::Task bad = MakeTask("7/dev-3.8/test", v1::TASK_STATE_FAILED, "a2", 31, 61);
  bad.set_attempts(2);
  bad.set_exit_code(3);
  bad.set_reason("exit code 3");
  *job.add_tasks() = ok;
  *job.add_tasks() = bad;
  *job.add_tasks() = MakeTask("7/dev-3.8/pkg", v1::TASK_STATE_SKIPPED);

  EXPECT_THAT(
      RenderStatus(job, "", kNow),
      ElementsAre("job 7 (nightly) failed in 1m05s", "",
                  "TASK          STATE      AGENT  ATTEMPT  EXIT  DURATION  TESTS  REASON",
                  "dev-3.8/base  succeeded  a1     1        0     30s       -      -",
                  "dev-3.8/test  failed     a2     2        3     30s       -      exit code 3",
                  "dev-3.8/pkg   skipped    -      -        -     -         -      -"));
  EXPECT_THAT(
      RenderStatus(job, "7/dev-3.8/test", kNow),
      ElementsAre("job 7 (nightly) failed in 1m05s", "",
                  "TASK          STATE   AGENT  ATTEMPT  EXIT  DURATION  TESTS  REASON",
                  "dev-3.8/test  failed  a2     2        3     30s       -      exit code 3"));
}

TEST(RenderStatusTest, InputsUnderTheSummary) {
  v1::Job job;
  job.set_id("8");
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  job.set_created_us(kT0);
  job.set_ended_us(kT0 + 5'000'000);
  v1::JobInput* in = job.add_inputs();
  in->set_name("torch_musa");
  in->set_source("dir:/home/dev/torch_musa");
  in->mutable_tree()->set_sha256(std::string(64, 'a'));
  in->set_files(3021);
  in->set_bytes(210 << 20);
  *job.add_tasks() = MakeTask("8/image", v1::TASK_STATE_SUCCEEDED, "a1", 1, 3);
  std::vector<std::string> lines = RenderStatus(job, "", kNow);
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[1], "input torch_musa: dir:/home/dev/torch_musa, tree aaaaaaaaaaaa, 3021 files, 210 MiB");
  EXPECT_EQ(lines[2], "");
  // A task's own status leaves them out.
  EXPECT_EQ(RenderStatus(job, "8/image", kNow)[1], "");
}

v1::Artifact MakeArtifact(const std::string& name, uint64_t size, const std::string& source = "") {
  v1::Artifact a;
  a.set_name(name);
  a.set_size(size);
  a.set_source(source);
  return a;
}

TEST(RenderStatusTest, TestsColumnAndArtifactsAfterTheTable) {
  v1::Job job;
  job.set_id("7");
  job.set_name("nightly");
  job.set_state(v1::JOB_STATE_FAILED);
  job.set_created_us(kT0);
  job.set_ended_us(kT0 + 65'000'000);
  v1::Task base = MakeTask("7/dev-3.8/base", v1::TASK_STATE_SUCCEEDED, "a1", 1, 31);
  base.set_attempts(1);
  base.mutable_tests()->set_passed(3);
  *base.add_artifacts() = MakeArtifact("ut_output.txt", 512);
  v1::Task test = MakeTask("7/dev-3.8/test", v1::TASK_STATE_FAILED, "a2", 31, 61);
  test.set_attempts(1);
  test.set_exit_code(0);
  test.set_reason("2 failed, 0 errors of 13 tests");
  test.mutable_tests()->set_passed(10);
  test.mutable_tests()->set_failed(2);
  test.mutable_tests()->set_skipped(1);
  *test.add_artifacts() = MakeArtifact("ut_output.txt", 4096, "/home/ut_output.txt");
  *test.add_artifacts() = MakeArtifact("integration_test_output.txt", 1024);
  *job.add_tasks() = base;
  *job.add_tasks() = test;
  *job.add_tasks() = MakeTask("7/dev-3.8/pkg", v1::TASK_STATE_SKIPPED);

  EXPECT_THAT(
      RenderStatus(job, "", kNow),
      ElementsAre("job 7 (nightly) failed in 1m05s", "",
                  "TASK          STATE      AGENT  ATTEMPT  EXIT  DURATION  TESTS                 "
                  "          REASON",
                  "dev-3.8/base  succeeded  a1     1        0     30s       3 passed              "
                  "          -",
                  "dev-3.8/test  failed     a2     1        0     30s       10 passed, 2 failed, 1 "
                  "skipped  2 failed, 0 errors of 13 tests",
                  "dev-3.8/pkg   skipped    -      -        -     -         -                     "
                  "          -",
                  "",  //
                  "artifacts: 7/dev-3.8/base: ut_output.txt (512 B)",
                  "artifacts: 7/dev-3.8/test: ut_output.txt (4 KiB), integration_test_output.txt "
                  "(1 KiB)"));
  // One task: its artifacts only.
  std::vector<std::string> one = RenderStatus(job, "7/dev-3.8/base", kNow);
  ASSERT_EQ(one.size(), 6u);
  EXPECT_EQ(one[3], "dev-3.8/base  succeeded  a1     1        0     30s       3 passed  -");
  EXPECT_EQ(one[5], "artifacts: 7/dev-3.8/base: ut_output.txt (512 B)");
}

TEST(TestsCellTest, PassedAlwaysOthersWhenNotZero) {
  v1::Task t;
  EXPECT_EQ(TestsCell(t), "-");
  t.mutable_tests();  // present, all zero
  EXPECT_EQ(TestsCell(t), "0 passed");
  t.mutable_tests()->set_passed(10);
  t.mutable_tests()->set_failed(2);
  EXPECT_EQ(TestsCell(t), "10 passed, 2 failed");
  t.mutable_tests()->set_skipped(3);
  t.mutable_tests()->set_errors(1);
  EXPECT_EQ(TestsCell(t), "10 passed, 2 failed, 3 skipped, 1 error");
  t.mutable_tests()->set_failed(0);
  t.mutable_tests()->set_errors(4);
  EXPECT_EQ(TestsCell(t), "10 passed, 3 skipped, 4 errors");
}

TEST(RenderArtifactsTest, NameSizeSource) {
  v1::Task t = MakeTask("7/a", v1::TASK_STATE_SUCCEEDED);
  *t.add_artifacts() = MakeArtifact("ut_output.txt", 4096, "/home/ut_output.txt");
  *t.add_artifacts() = MakeArtifact("x.bin", 10);
  EXPECT_THAT(RenderArtifacts(t),
              ElementsAre("NAME           SIZE   SOURCE",
                          "ut_output.txt  4 KiB  /home/ut_output.txt", "x.bin          10 B   -"));
}

TEST(RenderJobsTest, CreatedInLocalTimeAndRunningDuration) {
  v1::Job j;
  j.set_id("7");
  j.set_name("n");
  j.set_state(v1::JOB_STATE_RUNNING);
  j.set_created_us(kT0);
  EXPECT_THAT(RenderJobs({j}, kNow, absl::UTCTimeZone()),
              ElementsAre("ID  NAME  STATE    CREATED              DURATION",
                          "7   n     running  2023-11-14 22:13:20  1m40s"));
}

// Issue 12: names with ESC and newlines were printed raw to terminals. Names
// a coordinator stored before it refused them come out escaped.
TEST(RenderJobsTest, ControlCharactersInNamesAreEscaped) {
  v1::Job j;
  j.set_id("7");
  j.set_name("evil\x1b[2J\nx");
  j.set_state(v1::JOB_STATE_RUNNING);
  j.set_created_us(kT0);
  EXPECT_THAT(RenderJobs({j}, kNow, absl::UTCTimeZone()),
              ElementsAre("ID  NAME          STATE    CREATED              DURATION",
                          "7   evil\\e[2J\\nx  running  2023-11-14 22:13:20  1m40s"));
  EXPECT_EQ(JobSummaryLine(j, kNow, /*with_name=*/true), "job 7 (evil\\e[2J\\nx) running for 1m40s");
}

TEST(RenderJobsTest, SubmitterColumnWhenAJobHasOne) {
  v1::Job a;
  a.set_id("8");
  a.set_name("n");
  a.set_state(v1::JOB_STATE_RUNNING);
  a.set_created_us(kT0);
  a.set_submitter("alice");
  v1::Job b = a;
  b.set_id("7");
  b.clear_submitter();  // from before users
  EXPECT_THAT(RenderJobs({a, b}, kNow, absl::UTCTimeZone()),
              ElementsAre("ID  NAME  STATE    CREATED              DURATION  SUBMITTER",
                          "8   n     running  2023-11-14 22:13:20  1m40s     alice",
                          "7   n     running  2023-11-14 22:13:20  1m40s     -"));
}

TEST(RenderStatusTest, SubmitterInTheSummaryLine) {
  v1::Job job;
  job.set_id("7");
  job.set_name("n");
  job.set_state(v1::JOB_STATE_RUNNING);
  job.set_created_us(kT0);
  job.set_submitter("alice");
  EXPECT_THAT(RenderStatus(job, "", kNow)[0], ::testing::EndsWith(", submitted by alice"));
}

TEST(RenderJobsTest, RerunOfColumnAndSummaryWhenAJobIsARerun) {
  v1::Job a;
  a.set_id("8");
  a.set_name("n");
  a.set_state(v1::JOB_STATE_RUNNING);
  a.set_created_us(kT0);
  a.set_rerun_of("7");
  v1::Job b = a;
  b.set_id("7");
  b.clear_rerun_of();
  EXPECT_THAT(RenderJobs({a, b}, kNow, absl::UTCTimeZone()),
              ElementsAre("ID  NAME  STATE    CREATED              DURATION  RERUN OF",
                          "8   n     running  2023-11-14 22:13:20  1m40s     7",
                          "7   n     running  2023-11-14 22:13:20  1m40s     -"));
  EXPECT_THAT(RenderStatus(a, "", kNow)[0], ::testing::EndsWith(", rerun of job 7"));
}

TEST(RenderAgentsTest, SlotsLabelsRunningLastSeen) {
  v1::Agent a;
  a.set_name("gpu-1");
  a.set_state(v1::AGENT_STATE_CONNECTED);
  a.set_slots(4);
  a.set_used_slots(1);
  a.add_labels("docker");
  a.add_labels("gpu=s4000");
  a.add_running_tasks("7/dev-3.8/base");
  a.set_last_seen_us(kT0 + 97'000'000);
  v1::Agent b;
  b.set_name("old");
  b.set_state(v1::AGENT_STATE_DISCONNECTED);
  b.set_slots(2);
  EXPECT_THAT(RenderAgents({a, b}, kNow),
              ElementsAre("NAME   STATE         SLOTS  LABELS            RUNNING         LAST SEEN",
                          "gpu-1  connected     1/4    docker,gpu=s4000  7/dev-3.8/base  3s ago",
                          "old    disconnected  0/2    -                 -               never"));
}

TEST(RenderAgentsTest, WhyAnAgentTakesNoWorkIsSaidBelowTheTable) {
  v1::Agent a;
  a.set_name("gpu-1");
  a.set_state(v1::AGENT_STATE_CONNECTED);
  a.set_slots(4);
  a.set_unavailable_reason("low disk: 1.2 GiB free in /var/lib/musafarm-agent, below 5.0 GiB");
  EXPECT_THAT(RenderAgents({a}, kNow),
              ElementsAre("NAME   STATE      SLOTS  LABELS  RUNNING  LAST SEEN",
                          "gpu-1  connected  0/4    -       -        never",
                          "gpu-1 takes no new work: low disk: 1.2 GiB free in "
                          "/var/lib/musafarm-agent, below 5.0 GiB"));
}

// Issue 16, item 3: kinds out of use (Docker daemon down) and fenced GPUs.
TEST(RenderAgentsTest, UnavailableKindsAndFencedGpusAreSaidBelowTheTable) {
  v1::Agent a;
  a.set_name("gpu-1");
  a.set_state(v1::AGENT_STATE_CONNECTED);
  a.set_slots(4);
  a.add_unavailable_kinds(v1::STAGE_KIND_DOCKER_BUILD);
  a.add_unavailable_kinds(v1::STAGE_KIND_DOCKER_RUN);
  a.set_kinds_unavailable_reason("docker daemon unreachable: Cannot connect");
  a.add_fenced_gpus(1);
  a.set_gpu_fence_reason("GPU 1: probe exit 1: ECC error");
  EXPECT_THAT(RenderAgents({a}, kNow),
              ElementsAre("NAME   STATE      SLOTS  LABELS  RUNNING  LAST SEEN",
                          "gpu-1  connected  0/4    -       -        never",
                          "gpu-1 takes no docker_build,docker_run work: docker daemon unreachable: "
                          "Cannot connect",
                          "gpu-1 fenced GPU 1 (never handed out): GPU 1: probe exit 1: ECC error"));
}

TEST(RenderAgentsTest, WhatThePolicyGrantsAndUntrustedLabelsAreSaidBelowTheTable) {
  v1::Agent a;
  a.set_name("gpu-1");
  a.set_state(v1::AGENT_STATE_CONNECTED);
  a.set_slots(4);
  a.add_labels("gpu");
  a.add_labels("pool=a");
  a.add_trusted_labels("pool=a");
  a.mutable_grants()->add_kinds(v1::STAGE_KIND_EXEC);
  a.mutable_grants()->add_kinds(v1::STAGE_KIND_DOCKER_RUN);
  a.mutable_grants()->set_shell(true);
  a.mutable_grants()->set_secrets(true);
  a.mutable_grants()->set_rule("gpu-*");
  v1::Agent b;  // no rule matched: the defaults
  b.set_name("x");
  b.set_state(v1::AGENT_STATE_CONNECTED);
  b.set_slots(1);
  for (int k = v1::STAGE_KIND_EXEC; k <= v1::STAGE_KIND_DOCKER_PUSH; ++k) {
    b.mutable_grants()->add_kinds(static_cast<v1::StageKind>(k));
  }
  v1::Agent c = b;  // granted everything, every label trusted: nothing to say
  c.set_name("y");
  c.mutable_grants()->set_shell(true);
  c.mutable_grants()->set_privileged(true);
  c.mutable_grants()->set_host_mounts(true);
  c.mutable_grants()->set_secrets(true);
  EXPECT_THAT(RenderAgents({a, b, c}, kNow),
              ElementsAre("NAME   STATE      SLOTS  LABELS      RUNNING  LAST SEEN",
                          "gpu-1  connected  0/4    gpu,pool=a  -        never",
                          "x      connected  0/1    -           -        never",
                          "y      connected  0/1    -           -        never",
                          "gpu-1 may run exec,docker_run,shell with secrets (policy rule "
                          "'gpu-*'); untrusted labels: gpu (not used for stages that need trust)",
                          "x may run exec,docker_build,docker_run,docker_push (no policy rule)"));
}

TEST(RenderTaskChangeTest, PlainWatchLine) {
  const absl::Time at = absl::FromUnixSeconds(3600 * 13 + 4 * 60 + 5);
  v1::Task t = MakeTask("7/dev-3.8/base", v1::TASK_STATE_RUNNING, "agent-1");
  EXPECT_EQ(RenderTaskChange(t, at, absl::UTCTimeZone()),
            "13:04:05 dev-3.8/base running on agent-1");
  t.set_state(v1::TASK_STATE_FAILED);
  t.set_reason("exit code 2");
  EXPECT_EQ(RenderTaskChange(t, at, absl::UTCTimeZone()),
            "13:04:05 dev-3.8/base failed on agent-1 (exit code 2)");
  t.set_state(v1::TASK_STATE_SKIPPED);
  t.set_reason("dependency failed");
  EXPECT_EQ(RenderTaskChange(t, at, absl::UTCTimeZone()),
            "13:04:05 dev-3.8/base skipped (dependency failed)");
  EXPECT_EQ(RenderTaskChange(MakeTask("7/x", v1::TASK_STATE_QUEUED), at, absl::UTCTimeZone()),
            "13:04:05 x queued");
}

TEST(RenderTaskChangeTest, AQueuedTaskSaysWhyItWaits) {
  const absl::Time at = absl::FromUnixSeconds(3600 * 13 + 4 * 60 + 5);
  v1::Task t = MakeTask("7/dev-3.8/base", v1::TASK_STATE_QUEUED);
  t.set_wait_reason("no connected agent runs docker_build");
  EXPECT_EQ(RenderTaskChange(t, at, absl::UTCTimeZone()),
            "13:04:05 dev-3.8/base queued (waits: no connected agent runs docker_build)");
  t.set_reason("lost with agent a1");
  EXPECT_EQ(TaskReason(t), "lost with agent a1; waits: no connected agent runs docker_build");
  // Only a queued task waits: a stale reason on another state is not shown.
  t.set_state(v1::TASK_STATE_RUNNING);
  EXPECT_EQ(TaskReason(t), "lost with agent a1");
}

TEST(RenderStatusTest, QueuedTasksWaitReasonInTheReasonColumn) {
  v1::Job job;
  job.set_id("7");
  job.set_state(v1::JOB_STATE_RUNNING);
  *job.add_tasks() = MakeTask("7/test", v1::TASK_STATE_QUEUED);
  job.mutable_tasks(0)->set_wait_reason("needs 2 GPUs; agents have at most 1");
  const std::vector<std::string> lines = RenderStatus(job, "", kNow);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_TRUE(absl::EndsWith(lines[3], "waits: needs 2 GPUs; agents have at most 1")) << lines[3];
}

TEST(RenderResultTest, TableThenSummary) {
  v1::Job job;
  job.set_id("7");
  job.set_state(v1::JOB_STATE_SUCCEEDED);
  job.set_created_us(kT0);
  job.set_ended_us(kT0 + 42'000'000);
  *job.add_tasks() = MakeTask("7/build", v1::TASK_STATE_SUCCEEDED, "a1", 1, 41);
  v1::Task test = MakeTask("7/test", v1::TASK_STATE_SUCCEEDED, "a1", 1, 41);
  test.mutable_tests()->set_passed(12);
  test.mutable_tests()->set_skipped(1);
  *job.add_tasks() = test;
  EXPECT_THAT(RenderResult(job, kNow),
              ElementsAre("TASK   STATE      AGENT  DURATION  EXIT  TESTS",
                          "build  succeeded  a1     40s       0     -",
                          "test   succeeded  a1     40s       0     12 passed, 1 skipped",
                          "job 7 succeeded in 42s"));
}

TEST(LogLineSplitterTest, BuffersPartialLinesPerTask) {
  LogLineSplitter s;
  EXPECT_THAT(s.Append("7/a", "hel"), ElementsAre());
  EXPECT_THAT(s.Append("7/b", "one\ntw"), ElementsAre("one"));
  EXPECT_THAT(s.Append("7/a", "lo\r\nwor"), ElementsAre("hello"));
  EXPECT_THAT(s.Append("7/a", "ld\n\n"), ElementsAre("world", ""));
  EXPECT_EQ(s.FlushTask("7/a"), "");
  EXPECT_THAT(s.FlushAll(), ElementsAre(std::make_pair(std::string("7/b"), std::string("tw"))));
  EXPECT_THAT(s.FlushAll(), ElementsAre());
}

TEST(LogLineSplitterTest, AppendLinesPrefixesEveryCompletedLineIntoOneBuffer) {
  LogLineSplitter s;
  std::string out = "before\n";
  s.AppendLines("7/a", "one\r\ntw", "[a] ", &out);
  EXPECT_EQ(out, "before\n[a] one\n");
  s.AppendLines("7/b", "b\n", "[b] ", &out);
  s.AppendLines("7/a", "o\r", "[a] ", &out);  // the '\r' waits for its '\n'
  EXPECT_EQ(out, "before\n[a] one\n[b] b\n");
  s.AppendLines("7/a", "\n\nthree\n", "[a] ", &out);
  EXPECT_EQ(out, "before\n[a] one\n[b] b\n[a] two\n[a] \n[a] three\n");
  EXPECT_THAT(s.FlushAll(), ElementsAre());
}

TEST(PrefixLogLineTest, Brackets) { EXPECT_EQ(PrefixLogLine("dev/base", "ok"), "[dev/base] ok"); }

TEST(RenderLiveTableTest, SummaryTableAndElapsed) {
  v1::Job job;
  job.set_id("7");
  job.set_state(v1::JOB_STATE_RUNNING);
  job.set_created_us(kT0);
  *job.add_tasks() = MakeTask("7/a", v1::TASK_STATE_SUCCEEDED, "h1", 0, 0);
  job.mutable_tasks(0)->set_started_us(kT0);
  job.mutable_tasks(0)->set_ended_us(kT0 + 10'000'000);
  *job.add_tasks() = MakeTask("7/b", v1::TASK_STATE_RUNNING, "h2", 40);
  *job.add_tasks() = MakeTask("7/c", v1::TASK_STATE_PENDING);
  EXPECT_THAT(RenderLiveTable(job, kNow, 200, 50),
              ElementsAre("job 7 running for 1m40s: 1/3 done, 1 running",
                          "TASK  STATE      AGENT  ELAPSED",  //
                          "a     succeeded  h1     10s",      //
                          "b     running    h2     1m00s",    //
                          "c     pending    -      -"));
}

TEST(RenderLiveTableTest, AQueuedTaskSaysWhyItWaitsInTheAgentColumn) {
  v1::Job job;
  job.set_id("7");
  job.set_state(v1::JOB_STATE_RUNNING);
  job.set_created_us(kT0);
  *job.add_tasks() = MakeTask("7/a", v1::TASK_STATE_QUEUED);
  job.mutable_tasks(0)->set_wait_reason("2 matching agents busy");
  EXPECT_THAT(RenderLiveTable(job, kNow, 200, 50),
              ElementsAre("job 7 running for 1m40s: 0/1 done, 0 running",
                          "TASK  STATE   AGENT                     ELAPSED",  //
                          "a     queued  (2 matching agents busy)  -"));
}

TEST(RenderLiveTableTest, FitsTheTerminal) {
  v1::Job job;
  job.set_id("7");
  job.set_state(v1::JOB_STATE_RUNNING);
  for (int i = 0; i < 10; ++i) {
    *job.add_tasks() = MakeTask("7/t" + std::to_string(i), v1::TASK_STATE_PENDING);
  }
  job.mutable_tasks(8)->set_state(v1::TASK_STATE_RUNNING);
  std::vector<std::string> lines = RenderLiveTable(job, kNow, 20, 6);
  EXPECT_THAT(lines, ElementsAre("job 7 running for 0", "TASK  STATE    AGEN",  // cut to the width
                                 "t0    pending  -", "t1    pending  -", "t8    running  -",
                                 "... 7 more tasks"));
}

TEST(RenderLiveTableTest, TestsColumnOnlyWhenSomeTaskHasTestsAndItFits) {
  v1::Job job;
  job.set_id("7");
  job.set_state(v1::JOB_STATE_RUNNING);
  job.set_created_us(kT0);
  v1::Task done = MakeTask("7/a", v1::TASK_STATE_FAILED, "h1");
  done.set_started_us(kT0);
  done.set_ended_us(kT0 + 10'000'000);
  *job.add_tasks() = done;
  *job.add_tasks() = MakeTask("7/b", v1::TASK_STATE_RUNNING, "h2", 40);
  // No counts yet: no column.
  EXPECT_THAT(RenderLiveTable(job, kNow, 200, 50),
              ElementsAre("job 7 running for 1m40s: 1/2 done, 1 running, 1 failed",
                          "TASK  STATE    AGENT  ELAPSED",  //
                          "a     failed   h1     10s",      //
                          "b     running  h2     1m00s"));
  job.mutable_tasks(0)->mutable_tests()->set_passed(10);
  job.mutable_tasks(0)->mutable_tests()->set_failed(2);
  EXPECT_THAT(RenderLiveTable(job, kNow, 200, 50),
              ElementsAre("job 7 running for 1m40s: 1/2 done, 1 running, 1 failed",
                          "TASK  STATE    AGENT  ELAPSED  TESTS",                //
                          "a     failed   h1     10s      10 passed, 2 failed",  //
                          "b     running  h2     1m00s    -"));
  // 50 columns wide with TESTS: it needs a terminal of 51.
  EXPECT_EQ(RenderLiveTable(job, kNow, 51, 50)[1], "TASK  STATE    AGENT  ELAPSED  TESTS");
  std::vector<std::string> narrow = RenderLiveTable(job, kNow, 50, 50);
  EXPECT_THAT(std::vector<std::string>(narrow.begin() + 1, narrow.end()),
              ElementsAre("TASK  STATE    AGENT  ELAPSED",  //
                          "a     failed   h1     10s",      //
                          "b     running  h2     1m00s"));
}

TEST(LiveFrameTest, MovesUpClearsAndRedraws) {
  EXPECT_EQ(LiveFrame(0, {}, {"t1"}), "\r\x1b[Jt1\n");
  EXPECT_EQ(LiveFrame(2, {"[a] log"}, {"t1", "t2"}), "\x1b[2A\r\x1b[J[a] log\nt1\nt2\n");
}

}  // namespace
}  // namespace musafarm::cli
