#include "coordinator/watch_hub.h"

#include <unistd.h>

#include <filesystem>

#include "gtest/gtest.h"
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

}  // namespace
}  // namespace musafarm::coordinator
