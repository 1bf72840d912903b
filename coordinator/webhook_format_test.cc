#include "coordinator/webhook_format.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;

v1::Task MakeTask(const std::string& id, v1::TaskState state, int passed, int failed) {
  v1::Task t;
  t.set_id(id);
  t.mutable_spec()->set_stage(id.substr(id.rfind('/') + 1));
  t.set_state(state);
  t.mutable_tests()->set_passed(passed);
  t.mutable_tests()->set_failed(failed);
  if (failed > 0) t.mutable_tests()->add_failed_tests("tests/test_ops.py::test_add");
  if (state == v1::TASK_STATE_FAILED) t.set_reason("exit 1: 1 test failed");
  return t;
}

Notification Sample() {
  Notification n;
  n.job.set_id("7");
  n.job.set_name("torch_musa");
  n.job.set_state(v1::JOB_STATE_FAILED);
  n.job.set_submitter("rel-eng");
  n.job.set_schedule("nightly");
  n.job.mutable_scheduled_time()->set_seconds(1'700'000'000);
  *n.job.add_tasks() = MakeTask("7/dev-3.8/build", v1::TASK_STATE_SUCCEEDED, 0, 0);
  *n.job.add_tasks() = MakeTask("7/dev-3.8/test", v1::TASK_STATE_FAILED, 10, 1);
  *n.job.add_tasks() = MakeTask("7/dev-3.9/test", v1::TASK_STATE_SUCCEEDED, 11, 0);
  n.log_tails["7/dev-3.8/test"] = "E assert 1 == 2\n1 failed, 10 passed";
  n.dashboard_url = "https://farm.example.com/";
  return n;
}

TEST(WebhookFormatTest, GenericJsonCarriesJobCellsCountsFailedTasksAndLink) {
  Json j = Json::parse(WebhookBody(Sample(), v1::WEBHOOK_FORMAT_JSON));
  EXPECT_EQ(j["event"], "job.ended");
  EXPECT_EQ(j["job"]["id"], "7");
  EXPECT_EQ(j["job"]["state"], "failed");
  EXPECT_EQ(j["job"]["schedule"], "nightly");
  EXPECT_EQ(j["job"]["scheduled_time"], "2023-11-14T22:13:20+00:00");
  EXPECT_EQ(j["job"]["link"], "https://farm.example.com/#/job/7");
  EXPECT_EQ(j["counts"]["tasks"], 3);
  EXPECT_EQ(j["counts"]["succeeded"], 2);
  EXPECT_EQ(j["counts"]["failed"], 1);
  EXPECT_EQ(j["counts"]["tests"]["passed"], 21);
  ASSERT_EQ(j["cells"].size(), 2u);
  EXPECT_EQ(j["cells"][0]["cell"], "dev-3.8");
  EXPECT_EQ(j["cells"][0]["state"], "failed");
  EXPECT_EQ(j["cells"][1]["state"], "succeeded");
  EXPECT_EQ(j["cells"][1]["tests"]["passed"], 11);
  ASSERT_EQ(j["failed_tasks"].size(), 1u);
  EXPECT_EQ(j["failed_tasks"][0]["id"], "7/dev-3.8/test");
  EXPECT_EQ(j["failed_tasks"][0]["failed_tests"][0], "tests/test_ops.py::test_add");
  EXPECT_THAT(j["failed_tasks"][0]["log_tail"].get<std::string>(), HasSubstr("E assert 1 == 2"));
  EXPECT_FALSE(j.contains("nightly_diff"));
  // UNSPECIFIED is the generic JSON too.
  EXPECT_EQ(WebhookBody(Sample(), v1::WEBHOOK_FORMAT_UNSPECIFIED),
            WebhookBody(Sample(), v1::WEBHOOK_FORMAT_JSON));
}

TEST(WebhookFormatTest, SlackAndFeishuCarryTheSameText) {
  Json slack = Json::parse(WebhookBody(Sample(), v1::WEBHOOK_FORMAT_SLACK));
  ASSERT_EQ(slack.size(), 1u);
  const std::string text = slack["text"];
  EXPECT_THAT(text, HasSubstr("musafarm job 7 (torch_musa) failed, schedule nightly"));
  EXPECT_THAT(text, HasSubstr("tests: 21 passed, 1 failed"));
  EXPECT_THAT(text, HasSubstr("failed: 7/dev-3.8/test: exit 1: 1 test failed"));
  EXPECT_THAT(text, HasSubstr("https://farm.example.com/#/job/7"));

  Json feishu = Json::parse(WebhookBody(Sample(), v1::WEBHOOK_FORMAT_FEISHU));
  EXPECT_EQ(feishu["msg_type"], "text");
  EXPECT_EQ(feishu["content"]["text"], text);
}

TEST(WebhookFormatTest, FirstFailureAndTheNightlyDiff) {
  Notification n = Sample();
  n.event = Notification::Event::kFirstFailure;
  n.job.set_state(v1::JOB_STATE_RUNNING);
  n.diff = NightlyDiff{"6", {{"dev-3.8", "dev-3.8/test", "tests/test_ops.py::test_add"}},
                       {{"dev-3.9", "dev-3.9/test", "tests/test_io.py::test_read"}}, {}};
  Json j = Json::parse(WebhookBody(n, v1::WEBHOOK_FORMAT_JSON));
  EXPECT_EQ(j["event"], "job.first_failure");
  EXPECT_EQ(j["nightly_diff"]["previous_job_id"], "6");
  EXPECT_EQ(j["nightly_diff"]["newly_failing"][0]["test"], "tests/test_ops.py::test_add");
  EXPECT_EQ(j["nightly_diff"]["fixed"][0]["test"], "tests/test_io.py::test_read");
  const std::string text = NotificationText(n);
  EXPECT_THAT(text, HasSubstr("a task failed"));
  EXPECT_THAT(text, HasSubstr("newly failing (1): dev-3.8: tests/test_ops.py::test_add"));
  EXPECT_THAT(text, HasSubstr("fixed (1): dev-3.9: tests/test_io.py::test_read"));
}

TEST(WebhookFormatTest, LogBytesThatAreNotUtf8AreReplacedNotThrown) {
  Notification n = Sample();
  n.log_tails["7/dev-3.8/test"] = std::string("bad \xff\xfe bytes");
  Json j = Json::parse(WebhookBody(n, v1::WEBHOOK_FORMAT_JSON));
  EXPECT_THAT(j["failed_tasks"][0]["log_tail"].get<std::string>(), HasSubstr("bad "));
}

}  // namespace
}  // namespace musafarm::coordinator
