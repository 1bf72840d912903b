#include "common/api_times.h"

#include <google/protobuf/util/json_util.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kT0 = 1796119200000000;  // 2026-12-01T10:00:00Z

std::string Json(const google::protobuf::Message& m) {
  std::string json;
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(m, &json, options).ok());
  return json;
}

TEST(ApiTimesTest, TaskTimesBecomeTimestampsAndJsonShowsRfc3339) {
  v1::Task task;
  task.set_created_us(kT0);
  task.set_started_us(kT0 + 1500000);  // .5 s
  task.set_ended_us(kT0 + 61000001);
  task.mutable_spec()->mutable_run()->set_timeout_seconds(3600);
  FillApiTimes(&task);
  EXPECT_EQ(task.created_time().seconds(), kT0 / 1000000);
  EXPECT_EQ(task.created_time().nanos(), 0);
  EXPECT_EQ(task.started_time().nanos(), 500000000);
  EXPECT_EQ(task.ended_time().nanos(), 1000);
  EXPECT_FALSE(task.has_cancel_requested_time());  // never requested: unset
  EXPECT_EQ(task.spec().run().timeout().seconds(), 3600);
  const std::string json = Json(task);
  EXPECT_THAT(json, HasSubstr(R"("created_time":"2026-12-01T10:00:00Z")"));
  EXPECT_THAT(json, HasSubstr(R"("started_time":"2026-12-01T10:00:01.500Z")"));
  EXPECT_THAT(json, HasSubstr(R"("ended_time":"2026-12-01T10:01:01.000001Z")"));
  EXPECT_THAT(json, HasSubstr(R"("timeout":"3600s")"));
  EXPECT_THAT(json, Not(HasSubstr("cancel_requested_time")));
  EXPECT_THAT(json, HasSubstr(R"("created_us":")"));  // the old field stays
}

TEST(ApiTimesTest, ZeroClearsAStaleTimestamp) {
  v1::Task task;
  task.set_started_us(kT0);
  task.mutable_spec()->mutable_run()->set_timeout_seconds(60);
  FillApiTimes(&task);
  ASSERT_TRUE(task.has_started_time());
  task.set_started_us(0);  // a retry clears it
  task.mutable_spec()->mutable_run()->set_timeout_seconds(0);
  FillApiTimes(&task);
  EXPECT_FALSE(task.has_started_time());
  EXPECT_FALSE(task.spec().run().has_timeout());
}

TEST(ApiTimesTest, JobWithTasksAgentAndWatchEvents) {
  v1::Job job;
  job.set_created_us(kT0);
  job.add_tasks()->set_created_us(kT0 + 1000);
  FillApiTimes(&job);
  EXPECT_EQ(job.created_time().seconds(), kT0 / 1000000);
  EXPECT_FALSE(job.has_ended_time());
  EXPECT_EQ(job.tasks(0).created_time().nanos(), 1000000);

  v1::Agent agent;
  agent.set_last_seen_us(kT0);
  FillApiTimes(&agent);
  EXPECT_THAT(Json(agent), HasSubstr(R"("last_seen_time":"2026-12-01T10:00:00Z")"));

  v1::WatchEvent snapshot, task, finished, log;
  snapshot.mutable_snapshot()->set_created_us(kT0);
  task.mutable_task()->set_ended_us(kT0);
  finished.mutable_finished()->set_ended_us(kT0);
  log.mutable_log()->set_offset(7);
  for (v1::WatchEvent* e : {&snapshot, &task, &finished, &log}) FillApiTimes(e);
  EXPECT_TRUE(snapshot.snapshot().has_created_time());
  EXPECT_TRUE(task.task().has_ended_time());
  EXPECT_TRUE(finished.finished().has_ended_time());
  EXPECT_EQ(log.log().offset(), 7u);
}

}  // namespace
}  // namespace musafarm
