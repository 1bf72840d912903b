#include "coordinator/watch_hub.h"

#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/reflection.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"
#include "tests/fakes/recording_watcher.h"

namespace musafarm::coordinator {
namespace {

using RecordingWatcher = testing::RecordingWatcher;

class WatchHubTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("mf-watch-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    logs_ = OpenFileLogStore(dir_.string());
    job_.set_id("1");
    job_.set_state(v1::JOB_STATE_RUNNING);
    for (const char* id : {"1/a", "1/b"}) {
      v1::Task* t = job_.add_tasks();
      t->set_id(id);
      t->set_job_id("1");
      t->set_attempt_id(5);
    }
  }
  void TearDown() override {
    logs_.reset();
    std::filesystem::remove_all(dir_);
  }
  v1::WatchJobRequest Request(const std::string& task = "", bool logs = false) {
    v1::WatchJobRequest r;
    r.set_job_id("1");
    r.set_task_id(task);
    r.set_logs(logs);
    return r;
  }

  std::filesystem::path dir_;
  std::unique_ptr<LogStore> logs_;
  v1::Job job_;
};

TEST_F(WatchHubTest, SnapshotThenCatchUpFromTheResumeOffset) {
  ASSERT_TRUE(logs_->Append("1/a", 5, 0, "hello world").ok());
  WatchHub hub(logs_.get());
  auto w = std::make_shared<RecordingWatcher>();
  v1::WatchJobRequest req = Request("", true);
  (*req.mutable_log_offsets())["1/a"] = 6;
  hub.Add(1, req, job_, w);
  ASSERT_GE(w->events.size(), 2u);
  EXPECT_TRUE(w->events[0].has_snapshot());
  EXPECT_EQ(w->events[0].snapshot().tasks_size(), 2);
  EXPECT_EQ(w->Log(), "world");
  EXPECT_EQ(hub.size(), 1u);
  // Bytes it already has are not sent again; the rest are.
  hub.PublishLog(job_.tasks(0), 5, 6, "world and more");
  EXPECT_EQ(w->Log(), "world and more");
  hub.PublishLog(job_.tasks(0), 5, 0, "hello world and more!");
  EXPECT_EQ(w->Log(), "world and more!");
}

TEST_F(WatchHubTest, ANewAttemptsLogStartsFromZero) {
  WatchHub hub(logs_.get());
  auto w = std::make_shared<RecordingWatcher>();
  hub.Add(1, Request("", true), job_, w);
  hub.PublishLog(job_.tasks(0), 5, 0, "first");
  hub.PublishLog(job_.tasks(0), 6, 0, "second");
  EXPECT_EQ(w->Log(), "firstsecond");
}

TEST_F(WatchHubTest, TaskFilterAndLogsFlagDecideWhatIsSent) {
  WatchHub hub(logs_.get());
  auto only_b = std::make_shared<RecordingWatcher>();
  auto no_logs = std::make_shared<RecordingWatcher>();
  hub.Add(1, Request("1/b", true), job_, only_b);
  hub.Add(2, Request("", false), job_, no_logs);
  ASSERT_EQ(only_b->events[0].snapshot().tasks_size(), 1);
  EXPECT_EQ(only_b->events[0].snapshot().tasks(0).id(), "1/b");
  hub.PublishTask(job_.tasks(0));
  hub.PublishLog(job_.tasks(0), 5, 0, "a's log");
  hub.PublishTask(job_.tasks(1));
  ASSERT_EQ(only_b->events.size(), 2u);
  EXPECT_EQ(only_b->events[1].task().id(), "1/b");
  ASSERT_EQ(no_logs->events.size(), 3u);  // snapshot, a, b: no log
  EXPECT_TRUE(no_logs->events[1].has_task());
  EXPECT_TRUE(no_logs->events[2].has_task());
}

// Sets every field of `m` (recursively for messages, one element for repeated
// ones) to a value other than its default, through reflection: a field added
// to Task later is covered without changing the test.
void FillEveryField(google::protobuf::Message* m, int depth = 0) {
  using google::protobuf::FieldDescriptor;
  const google::protobuf::Descriptor* d = m->GetDescriptor();
  const google::protobuf::Reflection* r = m->GetReflection();
  for (int i = 0; i < d->field_count(); ++i) {
    const FieldDescriptor* f = d->field(i);
    const int v = i + 2;
    if (f->is_map()) continue;  // Task has none; a map would need its own entry type
    if (f->is_repeated()) {
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32: r->AddInt32(m, f, v); break;
        case FieldDescriptor::CPPTYPE_INT64: r->AddInt64(m, f, v); break;
        case FieldDescriptor::CPPTYPE_UINT32: r->AddUInt32(m, f, v); break;
        case FieldDescriptor::CPPTYPE_UINT64: r->AddUInt64(m, f, v); break;
        case FieldDescriptor::CPPTYPE_DOUBLE: r->AddDouble(m, f, v); break;
        case FieldDescriptor::CPPTYPE_FLOAT: r->AddFloat(m, f, static_cast<float>(v)); break;
        case FieldDescriptor::CPPTYPE_BOOL: r->AddBool(m, f, true); break;
        case FieldDescriptor::CPPTYPE_ENUM: r->AddEnumValue(m, f, 1); break;
        case FieldDescriptor::CPPTYPE_STRING: r->AddString(m, f, absl::StrCat("s", v)); break;
        case FieldDescriptor::CPPTYPE_MESSAGE:
          if (depth < 3) FillEveryField(r->AddMessage(m, f), depth + 1);
          break;
      }
      continue;
    }
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: r->SetInt32(m, f, v); break;
      case FieldDescriptor::CPPTYPE_INT64: r->SetInt64(m, f, v); break;
      case FieldDescriptor::CPPTYPE_UINT32: r->SetUInt32(m, f, v); break;
      case FieldDescriptor::CPPTYPE_UINT64: r->SetUInt64(m, f, v); break;
      case FieldDescriptor::CPPTYPE_DOUBLE: r->SetDouble(m, f, v); break;
      case FieldDescriptor::CPPTYPE_FLOAT: r->SetFloat(m, f, static_cast<float>(v)); break;
      case FieldDescriptor::CPPTYPE_BOOL: r->SetBool(m, f, true); break;
      case FieldDescriptor::CPPTYPE_ENUM: r->SetEnumValue(m, f, 1); break;
      case FieldDescriptor::CPPTYPE_STRING: r->SetString(m, f, absl::StrCat("s", v)); break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (depth < 3) FillEveryField(r->MutableMessage(m, f), depth + 1);
        break;
    }
  }
}

TEST(CopyTaskWithoutSpecTest, EveryFieldButTheSpecArrives) {
  v1::Task full;
  FillEveryField(&full);
  ASSERT_TRUE(full.has_spec());
  v1::Task copy;
  CopyTaskWithoutSpec(full, &copy);
  EXPECT_FALSE(copy.has_spec());
  v1::Task want = full;
  want.clear_spec();
  std::string diff;
  google::protobuf::util::MessageDifferencer differ;
  differ.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differ.Compare(want, copy)) << diff;
}

TEST_F(WatchHubTest, AWatcherWithoutSpecsGetsTaskChangesWithoutThemAndTheSnapshotWithThem) {
  for (v1::Task& t : *job_.mutable_tasks()) {
    t.mutable_spec()->set_stage("build");
    t.mutable_spec()->add_needs("x");
  }
  WatchHub hub(logs_.get());
  auto lean = std::make_shared<RecordingWatcher>();
  auto whole = std::make_shared<RecordingWatcher>();
  v1::WatchJobRequest req = Request();
  req.set_without_specs(true);
  hub.Add(1, req, job_, lean);
  hub.Add(2, Request(), job_, whole);
  job_.mutable_tasks(0)->set_state(v1::TASK_STATE_RUNNING);
  hub.PublishTask(job_.tasks(0));
  ASSERT_EQ(lean->events.size(), 2u);
  EXPECT_EQ(lean->events[0].snapshot().tasks(0).spec().stage(), "build");
  EXPECT_EQ(lean->events[1].task().id(), "1/a");
  EXPECT_EQ(lean->events[1].task().state(), v1::TASK_STATE_RUNNING);
  EXPECT_FALSE(lean->events[1].task().has_spec());
  ASSERT_EQ(whole->events.size(), 2u);
  EXPECT_EQ(whole->events[1].task().spec().stage(), "build");
  job_.set_state(v1::JOB_STATE_SUCCEEDED);
  hub.PublishJobEnd(job_);
  EXPECT_EQ(lean->events.back().finished().tasks(1).spec().stage(), "build");
}

TEST_F(WatchHubTest, JobEndFinishesAndDropsItsWatchersOnly) {
  WatchHub hub(logs_.get());
  auto mine = std::make_shared<RecordingWatcher>();
  auto other = std::make_shared<RecordingWatcher>();
  hub.Add(1, Request(), job_, mine);
  v1::Job job2 = job_;
  job2.set_id("2");
  v1::WatchJobRequest r2 = Request();
  r2.set_job_id("2");
  hub.Add(2, r2, job2, other);
  job_.set_state(v1::JOB_STATE_SUCCEEDED);
  hub.PublishJobEnd(job_);
  EXPECT_TRUE(mine->done);
  EXPECT_TRUE(mine->finished.ok());
  EXPECT_TRUE(mine->events.back().has_finished());
  EXPECT_FALSE(other->done);
  EXPECT_EQ(hub.size(), 1u);
  hub.FinishAll(absl::UnavailableError("bye"));
  EXPECT_TRUE(absl::IsUnavailable(other->finished));
  EXPECT_EQ(hub.size(), 0u);
}

TEST_F(WatchHubTest, WatchingAnEndedJobFinishesAtOnce) {
  WatchHub hub(logs_.get());
  job_.set_state(v1::JOB_STATE_FAILED);
  auto w = std::make_shared<RecordingWatcher>();
  hub.Add(1, Request(), job_, w);
  EXPECT_TRUE(w->done);
  EXPECT_TRUE(w->events.back().has_finished());
  EXPECT_EQ(hub.size(), 0u);
}


// What the core does with a chunk an agent sent: store it, then publish it.
void StoreAndPublish(LogStore* logs, WatchHub* hub, const v1::Task& task, uint64_t attempt,
                     const std::string& data) {
  const uint64_t at = logs->Size(task.id(), attempt);
  ASSERT_TRUE(logs->Append(task.id(), attempt, at, data).ok());
  hub->PublishLog(task, attempt, at, data);
}

// 64 KiB of distinct bytes, the `n`th piece of a log.
std::string Piece(int n) {
  std::string s = absl::StrCat("piece ", n, "\n");
  s.resize(64 << 10, static_cast<char>('a' + n % 26));
  return s;
}

// The watcher writes what it was sent; it is told to go on where it asked.
void Drain(WatchHub* hub, RecordingWatcher* w, WatchHub::WatchId id) {
  w->unwritten = 0;
  if (!w->drain_requests.empty()) hub->Resume(id);
}

TEST_F(WatchHubTest, ASlowWatcherIsHeldAtTheWindowAndGetsEveryByteInOrderFromTheStore) {
  WatchHub hub(logs_.get());
  auto w = std::make_shared<RecordingWatcher>();
  w->count_unwritten = true;
  hub.Add(1, Request("", true), job_, w);
  // 16 MiB stored while the watcher writes nothing: it gets the window's worth.
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all += Piece(i);
    StoreAndPublish(logs_.get(), &hub, job_.tasks(0), 5, Piece(i));
  }
  EXPECT_LE(w->max_unwritten, WatchHub::kWindow + (64 << 10));
  ASSERT_EQ(w->drain_requests.size(), 1u);
  EXPECT_LT(w->Log().size(), all.size());
  // A task change meanwhile waits for the log bytes stored before it.
  v1::Task a = job_.tasks(0);
  a.set_state(v1::TASK_STATE_SUCCEEDED);
  hub.PublishTask(a);
  EXPECT_FALSE(w->events.back().has_task());
  // As it drains, the rest comes from the store, in pieces of at most 1 MiB.
  for (int round = 0; round < 100 && w->Log().size() < all.size(); ++round) {
    Drain(&hub, w.get(), 1);
    EXPECT_LE(w->max_unwritten, WatchHub::kWindow + WatchHub::kCatchUpChunk);
  }
  EXPECT_EQ(w->Log(), all);
  for (const v1::WatchEvent& e : w->events) {
    if (e.has_log()) EXPECT_LE(e.log().data().size(), WatchHub::kCatchUpChunk);
  }
  ASSERT_TRUE(w->events.back().has_task());
  EXPECT_EQ(w->events.back().task().state(), v1::TASK_STATE_SUCCEEDED);
  // Current again: new bytes go straight to it.
  StoreAndPublish(logs_.get(), &hub, job_.tasks(0), 5, "live\n");
  EXPECT_EQ(w->events.back().log().data(), "live\n");
}

TEST_F(WatchHubTest, AJobEndWaitsForTheLogOfAWatcherBehind) {
  WatchHub hub(logs_.get());
  auto w = std::make_shared<RecordingWatcher>();
  w->count_unwritten = true;
  v1::WatchJobRequest req = Request("", true);
  req.set_without_specs(true);
  hub.Add(1, req, job_, w);
  std::string all;
  for (int i = 0; i < 128; ++i) {
    all += Piece(i);
    StoreAndPublish(logs_.get(), &hub, job_.tasks(1), 5, Piece(i));
  }
  job_.mutable_tasks(0)->mutable_spec()->set_stage("build");
  job_.mutable_tasks(0)->set_state(v1::TASK_STATE_SUCCEEDED);
  hub.PublishTask(job_.tasks(0));  // held while behind, sent after the logs
  job_.set_state(v1::JOB_STATE_SUCCEEDED);
  hub.PublishJobEnd(job_);
  EXPECT_FALSE(w->done);
  EXPECT_EQ(hub.size(), 1u);
  for (int round = 0; round < 100 && !w->done; ++round) Drain(&hub, w.get(), 1);
  EXPECT_TRUE(w->done);
  EXPECT_TRUE(w->finished.ok());
  EXPECT_EQ(w->Log(), all);
  EXPECT_TRUE(w->events.back().has_finished());
  EXPECT_EQ(hub.size(), 0u);
  // The held change, as this watcher asked for changes: without the spec.
  ASSERT_TRUE(w->events[w->events.size() - 2].has_task());
  EXPECT_EQ(w->events[w->events.size() - 2].task().state(), v1::TASK_STATE_SUCCEEDED);
  EXPECT_FALSE(w->events[w->events.size() - 2].task().has_spec());
}

TEST_F(WatchHubTest, AWatcherBehindGetsTheEndOfTheOldAttemptBeforeTheNewOne) {
  WatchHub hub(logs_.get());
  auto w = std::make_shared<RecordingWatcher>();
  w->count_unwritten = true;
  hub.Add(1, Request("1/a", true), job_, w);
  std::string first;
  for (int i = 0; i < 96; ++i) {
    first += Piece(i);
    StoreAndPublish(logs_.get(), &hub, job_.tasks(0), 5, Piece(i));
  }
  ASSERT_FALSE(w->drain_requests.empty());
  StoreAndPublish(logs_.get(), &hub, job_.tasks(0), 6, "second attempt\n");
  for (int round = 0; round < 100 && w->Log().size() < first.size() + 15; ++round) {
    Drain(&hub, w.get(), 1);
  }
  EXPECT_EQ(w->Log(), first + "second attempt\n");
  EXPECT_EQ(w->events.back().log().attempt_id(), 6u);
}

// The log bytes of `task` the watcher was sent, in order.
std::string TaskLog(const RecordingWatcher& w, const std::string& task) {
  std::string out;
  for (const v1::WatchEvent& e : w.events) {
    if (e.has_log() && e.log().task_id() == task) out += e.log().data();
  }
  return out;
}

TEST_F(WatchHubTest, TasksBehindTakeTurnsSoABusyOneHoldsNoneBack) {
  WatchHub hub(logs_.get());
  auto w = std::make_shared<RecordingWatcher>();
  w->count_unwritten = true;
  hub.Add(1, Request("", true), job_, w);
  // Both tasks print 8 MiB while the watcher writes nothing: it falls behind
  // in both.
  std::string a, b;
  for (int i = 0; i < 128; ++i) {
    a += Piece(i);
    StoreAndPublish(logs_.get(), &hub, job_.tasks(0), 5, Piece(i));
    b += Piece(i + 1);
    StoreAndPublish(logs_.get(), &hub, job_.tasks(1), 5, Piece(i + 1));
  }
  ASSERT_FALSE(w->drain_requests.empty());
  // Each time it drains, 1/a has printed another window's worth and 1/b a
  // line. Caught up task by task, 1/b would wait until 1/a stopped printing;
  // taking turns, both move every time.
  for (int round = 0; round < 8; ++round) {
    const size_t had_a = TaskLog(*w, "1/a").size(), had_b = TaskLog(*w, "1/b").size();
    for (int i = 0; i < 64; ++i) {
      a += Piece(round * 64 + i);
      StoreAndPublish(logs_.get(), &hub, job_.tasks(0), 5, Piece(round * 64 + i));
    }
    b += "a line\n";
    StoreAndPublish(logs_.get(), &hub, job_.tasks(1), 5, "a line\n");
    Drain(&hub, w.get(), 1);
    EXPECT_GT(TaskLog(*w, "1/a").size(), had_a) << "round " << round;
    EXPECT_GT(TaskLog(*w, "1/b").size(), had_b) << "round " << round;
    EXPECT_LE(w->max_unwritten, WatchHub::kWindow + WatchHub::kCatchUpChunk);
  }
  for (int round = 0; round < 100 && w->Log().size() < a.size() + b.size(); ++round) {
    Drain(&hub, w.get(), 1);
  }
  EXPECT_EQ(TaskLog(*w, "1/a"), a);
  EXPECT_EQ(TaskLog(*w, "1/b"), b);
  // Current again: new bytes go straight to it.
  StoreAndPublish(logs_.get(), &hub, job_.tasks(1), 5, "live\n");
  EXPECT_EQ(w->events.back().log().data(), "live\n");
}

TEST_F(WatchHubTest, ANewWatcherOfALongLogIsCaughtUpAWindowAtATime) {
  std::string all;
  for (int i = 0; i < 160; ++i) {
    all += Piece(i);
    ASSERT_TRUE(logs_->Append("1/a", 5, all.size() - Piece(i).size(), Piece(i)).ok());
  }
  job_.set_state(v1::JOB_STATE_SUCCEEDED);
  WatchHub hub(logs_.get());
  auto w = std::make_shared<RecordingWatcher>();
  w->count_unwritten = true;
  hub.Add(1, Request("", true), job_, w);
  EXPECT_LE(w->max_unwritten, WatchHub::kWindow + WatchHub::kCatchUpChunk);
  EXPECT_FALSE(w->done);
  EXPECT_EQ(hub.size(), 1u);  // kept until its log is sent
  for (int round = 0; round < 100 && !w->done; ++round) Drain(&hub, w.get(), 1);
  EXPECT_EQ(w->Log(), all);
  EXPECT_TRUE(w->events.back().has_finished());
  EXPECT_EQ(hub.size(), 0u);
}

// Pacing: a watcher that keeps up holds the acks of the tasks it watches while
// kPace or more is unwritten, until its drain notice; one that writes nothing
// holds them until the next Judge (the core's tick) and then no more, until it
// is current again.
TEST_F(WatchHubTest, AWatcherThatKeepsUpHoldsTheAcksUntilItDrainsAndAStalledOneUntilJudged) {
  testing::FakeClock clock;
  WatchHub hub(logs_.get(), &clock);
  auto w = std::make_shared<RecordingWatcher>();
  w->count_unwritten = true;
  hub.Add(1, Request("1/a", true), job_, w);
  StoreAndPublish(logs_.get(), &hub, job_.tasks(0), 5, Piece(0));
  EXPECT_FALSE(hub.HoldsAcks(job_.tasks(0))) << "64 KiB unwritten holds nothing";
  for (int i = 1; i < 16; ++i) StoreAndPublish(logs_.get(), &hub, job_.tasks(0), 5, Piece(i));
  ASSERT_EQ(w->unwritten, WatchHub::kPace);
  EXPECT_TRUE(hub.HoldsAcks(job_.tasks(0)));
  EXPECT_FALSE(hub.HoldsAcks(job_.tasks(1))) << "a task it does not watch";
  ASSERT_EQ(w->drain_requests, std::vector<uint64_t>{WatchHub::kPace / 2});
  // It writes the MiB within 10 ms: the hold ends, and it paces on.
  clock.Advance(absl::Milliseconds(10));
  EXPECT_FALSE(hub.Judge());
  Drain(&hub, w.get(), 1);
  EXPECT_FALSE(hub.HoldsAcks(job_.tasks(0)));
  for (int i = 16; i < 32; ++i) StoreAndPublish(logs_.get(), &hub, job_.tasks(0), 5, Piece(i));
  EXPECT_TRUE(hub.HoldsAcks(job_.tasks(0)));
  // Then it stops reading: judged at the next tick, it holds nothing more,
  // however much it has unwritten, and falls behind as before.
  clock.Advance(absl::Milliseconds(500));
  EXPECT_TRUE(hub.Judge());
  EXPECT_FALSE(hub.HoldsAcks(job_.tasks(0)));
  std::string all;
  for (int i = 0; i < 32; ++i) all += Piece(i);
  for (int i = 32; i < 96; ++i) {
    all += Piece(i);
    StoreAndPublish(logs_.get(), &hub, job_.tasks(0), 5, Piece(i));
    EXPECT_FALSE(hub.HoldsAcks(job_.tasks(0)));
  }
  EXPECT_LE(w->max_unwritten, WatchHub::kWindow + (64 << 10));
  // It reads again: current once it has the rest, it holds the farm again.
  clock.Advance(absl::Seconds(2));
  Drain(&hub, w.get(), 1);
  EXPECT_TRUE(hub.HoldsAcks(job_.tasks(0)));
  for (int round = 0; round < 100 && w->Log().size() < all.size(); ++round) {
    clock.Advance(absl::Milliseconds(5));
    Drain(&hub, w.get(), 1);
  }
  EXPECT_EQ(w->Log(), all) << "every byte, in order";
}

}  // namespace
}  // namespace musafarm::coordinator
