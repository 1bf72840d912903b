#include "cli/watch_model.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "cli/fake_user_service.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;

const absl::Time kAt = absl::FromUnixSeconds(3600 * 10 + 60 * 2 + 3);  // 10:02:03 UTC

using fakes::MakeTask;

v1::WatchEvent Snapshot(std::vector<v1::Task> tasks, v1::JobState state = v1::JOB_STATE_RUNNING) {
  v1::WatchEvent ev;
  ev.mutable_snapshot()->set_id("7");
  ev.mutable_snapshot()->set_state(state);
  for (v1::Task& t : tasks) *ev.mutable_snapshot()->add_tasks() = t;
  return ev;
}

v1::WatchEvent TaskEvent(v1::Task t) { return fakes::TaskEv(std::move(t)); }
const auto Log = fakes::LogEv;

WatchModel Plain(bool logs) {
  WatchModel::Options o;
  o.logs = logs;
  o.tz = absl::UTCTimeZone();
  return WatchModel(o);
}

TEST(WatchModelTest, PrintsEveryTaskAtTheStartThenOnlyChanges) {
  WatchModel m = Plain(false);
  EXPECT_THAT(m.Apply(Snapshot({MakeTask("7/a", v1::TASK_STATE_QUEUED),
                                MakeTask("7/b", v1::TASK_STATE_PENDING)}),
                      kAt),
              ElementsAre("10:02:03 a queued", "10:02:03 b pending"));
  EXPECT_TRUE(m.has_snapshot());
  EXPECT_THAT(m.Apply(TaskEvent(MakeTask("7/a", v1::TASK_STATE_RUNNING, 1, "h1")), kAt),
              ElementsAre("10:02:03 a running on h1"));
  // The same state again (e.g. a field other than the state changed) prints nothing.
  EXPECT_THAT(m.Apply(TaskEvent(MakeTask("7/a", v1::TASK_STATE_RUNNING, 1, "h1")), kAt), IsEmpty());
  EXPECT_EQ(m.job().tasks(0).state(), v1::TASK_STATE_RUNNING);
}

TEST(WatchModelTest, AChangeWithoutItsSpecKeepsTheSpecOfTheSnapshot) {
  WatchModel m = Plain(false);
  v1::Task a = MakeTask("7/a", v1::TASK_STATE_QUEUED);
  a.mutable_spec()->set_stage("build");
  v1::Task b = MakeTask("7/b", v1::TASK_STATE_PENDING);
  b.mutable_spec()->set_stage("test");
  m.Apply(Snapshot({a, b}), kAt);
  // As the coordinator sends changes to a watcher that asked without specs.
  EXPECT_THAT(m.Apply(TaskEvent(MakeTask("7/b", v1::TASK_STATE_RUNNING, 1, "h1")), kAt),
              ElementsAre("10:02:03 b running on h1"));
  ASSERT_EQ(m.job().tasks_size(), 2);
  EXPECT_EQ(m.job().tasks(1).state(), v1::TASK_STATE_RUNNING);
  EXPECT_EQ(m.job().tasks(1).spec().stage(), "test");
  EXPECT_EQ(m.job().tasks(0).spec().stage(), "build");
  // A change that carries its spec replaces it; a task the snapshot lacked is added.
  b.set_state(v1::TASK_STATE_SUCCEEDED);
  b.mutable_spec()->set_stage("test2");
  m.Apply(TaskEvent(b), kAt);
  EXPECT_EQ(m.job().tasks(1).spec().stage(), "test2");
  m.Apply(TaskEvent(MakeTask("7/c", v1::TASK_STATE_QUEUED)), kAt);
  ASSERT_EQ(m.job().tasks_size(), 3);
  EXPECT_EQ(m.job().tasks(2).id(), "7/c");
  EXPECT_THAT(m.Apply(TaskEvent(MakeTask("7/c", v1::TASK_STATE_RUNNING, 1, "h2")), kAt),
              ElementsAre("10:02:03 c running on h2"));
  EXPECT_EQ(m.job().tasks_size(), 3);
}

TEST(WatchModelTest, AQueuedTaskWaitingForAnotherReasonIsPrinted) {
  WatchModel m = Plain(false);
  v1::Task a = MakeTask("7/a", v1::TASK_STATE_QUEUED);
  EXPECT_THAT(m.Apply(Snapshot({a}), kAt), ElementsAre("10:02:03 a queued"));
  a.set_wait_reason("1 matching agent busy");
  EXPECT_THAT(m.Apply(TaskEvent(a), kAt),
              ElementsAre("10:02:03 a queued (waits: 1 matching agent busy)"));
  EXPECT_THAT(m.Apply(TaskEvent(a), kAt), IsEmpty());
  a.set_wait_reason("1 matching agent draining");
  EXPECT_THAT(m.Apply(TaskEvent(a), kAt),
              ElementsAre("10:02:03 a queued (waits: 1 matching agent draining)"));
}

TEST(WatchModelTest, ResumeSnapshotPrintsOnlyWhatWasMissed) {
  WatchModel m = Plain(false);
  m.Apply(Snapshot({MakeTask("7/a", v1::TASK_STATE_RUNNING, 1, "h1"),
                    MakeTask("7/b", v1::TASK_STATE_PENDING)}),
          kAt);
  EXPECT_THAT(m.Apply(Snapshot({MakeTask("7/a", v1::TASK_STATE_RUNNING, 1, "h1"),
                                MakeTask("7/b", v1::TASK_STATE_QUEUED)}),
                      kAt),
              ElementsAre("10:02:03 b queued"));
}

TEST(WatchModelTest, FinishedSetsTheExitCode) {
  WatchModel m = Plain(false);
  m.Apply(Snapshot({MakeTask("7/a", v1::TASK_STATE_RUNNING, 1, "h1")}), kAt);
  EXPECT_FALSE(m.finished());
  v1::Task failed = MakeTask("7/a", v1::TASK_STATE_FAILED, 1, "h1");
  failed.set_reason("exit code 1");
  EXPECT_THAT(m.Apply(TaskEvent(failed), kAt),
              ElementsAre("10:02:03 a failed on h1 (exit code 1)"));
  EXPECT_THAT(m.Apply(Snapshot({failed}, v1::JOB_STATE_FAILED), kAt), IsEmpty());
  v1::WatchEvent fin;
  *fin.mutable_finished() = Snapshot({failed}, v1::JOB_STATE_FAILED).snapshot();
  EXPECT_THAT(m.Apply(fin, kAt), IsEmpty());
  EXPECT_TRUE(m.finished());
  EXPECT_EQ(m.ExitCode(), 1);

  WatchModel ok = Plain(false);
  *fin.mutable_finished() = Snapshot({}, v1::JOB_STATE_SUCCEEDED).snapshot();
  ok.Apply(fin, kAt);
  EXPECT_EQ(ok.ExitCode(), 0);
}

TEST(WatchModelTest, LiveModePrintsNoTaskLines) {
  WatchModel::Options o;
  o.live = true;
  o.logs = true;
  WatchModel m(o);
  EXPECT_THAT(m.Apply(Snapshot({MakeTask("7/a", v1::TASK_STATE_QUEUED)}), kAt), IsEmpty());
  EXPECT_THAT(m.Apply(TaskEvent(MakeTask("7/a", v1::TASK_STATE_RUNNING, 1)), kAt), IsEmpty());
  EXPECT_THAT(m.Apply(Log("7/a", 1, 0, "x\n"), kAt), ElementsAre("[a] x"));
}

TEST(WatchModelTest, LogLinesArePrefixedAndPartialLinesBuffered) {
  WatchModel m = Plain(true);
  m.Apply(Snapshot({MakeTask("7/dev/a", v1::TASK_STATE_RUNNING, 1),
                    MakeTask("7/dev/b", v1::TASK_STATE_RUNNING, 2)}),
          kAt);
  EXPECT_THAT(m.Apply(Log("7/dev/a", 1, 0, "compil"), kAt), IsEmpty());
  EXPECT_THAT(m.Apply(Log("7/dev/b", 2, 0, "b1\nb2"), kAt), ElementsAre("[dev/b] b1"));
  EXPECT_THAT(m.Apply(Log("7/dev/a", 1, 6, "ing\nlinking\n"), kAt),
              ElementsAre("[dev/a] compiling", "[dev/a] linking"));
  EXPECT_THAT(m.FlushLogs(), ElementsAre("[dev/b] b2"));
}

// What `watch --logs` writes, one buffer per event: each line of the log once,
// after its prefix, byte for byte (any bytes but '\r' before '\n'), however
// the log was cut into chunks.
TEST(WatchModelTest, ApplyTextPrintsEveryLogByteOnceAfterItsPrefixWhereverChunksAreCut) {
  std::string log;
  for (int i = 0; i < 5000; ++i) {
    absl::StrAppend(&log, "line ", i, " ", std::string(static_cast<size_t>(i % 97), '-'));
    log.push_back(static_cast<char>(0x80 + i % 64));  // not UTF-8: logs are bytes
    log.push_back('\n');
  }
  log += "no newline at the end";
  WatchModel m = Plain(true);
  std::string text;
  m.ApplyText(Snapshot({MakeTask("7/dev/a", v1::TASK_STATE_RUNNING, 1)}), kAt, &text);
  text.clear();
  uint64_t offset = 0;
  for (size_t cut = 1; offset < log.size(); cut = cut * 7 % 9973 + 1) {
    const std::string chunk = log.substr(offset, cut);
    m.ApplyText(Log("7/dev/a", 1, offset, chunk), kAt, &text);
    // A chunk sent again (a resumed watch) prints nothing more.
    m.ApplyText(Log("7/dev/a", 1, offset, chunk), kAt, &text);
    offset += chunk.size();
  }
  for (const std::string& rest : m.FlushLogs()) absl::StrAppend(&text, rest, "\n");
  std::string printed;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    ASSERT_TRUE(absl::ConsumePrefix(&line, "[dev/a] ")) << line;
    absl::StrAppend(&printed, line, "\n");
  }
  EXPECT_EQ(printed, log + "\n");
}

TEST(WatchModelTest, LogsAreIgnoredUnlessAsked) {
  WatchModel m = Plain(false);
  m.Apply(Snapshot({MakeTask("7/a", v1::TASK_STATE_RUNNING, 1)}), kAt);
  EXPECT_THAT(m.Apply(Log("7/a", 1, 0, "x\n"), kAt), IsEmpty());
  EXPECT_THAT(m.LogOffsets(), IsEmpty());
}

TEST(WatchModelTest, ResentBytesArePrintedOnce) {
  WatchModel m = Plain(true);
  m.Apply(Snapshot({MakeTask("7/a", v1::TASK_STATE_RUNNING, 1)}), kAt);
  EXPECT_THAT(m.Apply(Log("7/a", 1, 0, "one\ntw"), kAt), ElementsAre("[a] one"));
  EXPECT_THAT(m.LogOffsets(), ElementsAre(Pair("7/a", 6)));
  // After a resume the server may send from an older offset: only new bytes count.
  EXPECT_THAT(m.Apply(Log("7/a", 1, 4, "two\nthree\n"), kAt), ElementsAre("[a] two", "[a] three"));
  EXPECT_THAT(m.Apply(Log("7/a", 1, 0, "one\n"), kAt), IsEmpty());
  EXPECT_THAT(m.LogOffsets(), ElementsAre(Pair("7/a", 14)));
}

TEST(WatchModelTest, ANewAttemptStartsItsLogOver) {
  WatchModel m = Plain(true);
  m.Apply(Snapshot({MakeTask("7/a", v1::TASK_STATE_RUNNING, 1)}), kAt);
  m.Apply(Log("7/a", 1, 0, "first\npart"), kAt);
  // The task is retried: attempt 2. Until its log arrives, no resume offset is
  // sent for it (the old attempt's offset would skip the new attempt's bytes).
  m.Apply(TaskEvent(MakeTask("7/a", v1::TASK_STATE_RUNNING, 2)), kAt);
  EXPECT_THAT(m.LogOffsets(), IsEmpty());
  EXPECT_THAT(m.Apply(Log("7/a", 2, 0, "again\n"), kAt), ElementsAre("[a] part", "[a] again"));
  EXPECT_THAT(m.LogOffsets(), ElementsAre(Pair("7/a", 6)));
  // A late chunk of the old attempt is dropped.
  EXPECT_THAT(m.Apply(Log("7/a", 1, 10, "late\n"), kAt), IsEmpty());
}

TEST(LogCursorTest, SeedSkipsWhatWasRead) {
  LogCursor c;
  c.Seed(3, 5);
  EXPECT_EQ(c.Accept(3, 0, "hello world"), " world");
  EXPECT_EQ(c.consumed(), 11u);
  EXPECT_EQ(c.Accept(3, 11, "!"), "!");
}

}  // namespace
}  // namespace musafarm::cli
