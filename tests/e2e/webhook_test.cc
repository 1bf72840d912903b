// End-to-end tests of issue 14's notifications: the real coordinator, agent
// and CLI on loopback, and a webhook receiver (cpp-httplib) in the test.
#include <atomic>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/harness.h"
#include "tests/e2e/http_port.h"

namespace musafarm::e2e {
namespace {

using ::testing::HasSubstr;

constexpr char kFailingPipeline[] = R"yaml(name: notified
stages:
  - name: build
    exec: ["sh", "-c", "echo building; echo 'E assert 1 == 2'; exit 1"]
)yaml";

// A webhook receiver: records every request (path, delivery id, body) and
// answers 500 to the first `fail_first` of them.
class Receiver {
 public:
  struct Hit {
    std::string path, id, body;
    int status = 0;
  };

  explicit Receiver(int fail_first = 0) : fail_first_(fail_first) {}
  ~Receiver() { Stop(); }

  // Listens on `port` (0: any) and returns the port.
  int Start(int port = 0) {
    server_ = std::make_unique<httplib::Server>();
    server_->Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      absl::MutexLock lock(&mu_);
      Hit hit{req.path, req.get_header_value("X-Musafarm-Delivery"), req.body, 200};
      if (fail_first_ > 0) {
        --fail_first_;
        hit.status = 500;
      }
      res.status = hit.status;
      hits_.push_back(std::move(hit));
    });
    port_ = port == 0 ? server_->bind_to_any_port("127.0.0.1")
                      : (server_->bind_to_port("127.0.0.1", port) ? port : -1);
    thread_ = std::thread([this] { server_->listen_after_bind(); });
    // stop() before the accept loop runs would be lost (and join hang).
    EXPECT_TRUE(WaitFor([this] { return server_->is_running(); }, absl::Seconds(10)));
    return port_;
  }
  void Stop() {
    if (server_ == nullptr) return;
    server_->stop();
    thread_.join();
    server_.reset();
  }
  std::vector<Hit> hits() {
    absl::MutexLock lock(&mu_);
    return hits_;
  }
  // Distinct delivery ids answered 2xx on `path`.
  std::set<std::string> DeliveredIds(const std::string& path) {
    std::set<std::string> ids;
    for (const Hit& h : hits()) {
      if (h.path == path && h.status == 200) ids.insert(h.id);
    }
    return ids;
  }
  std::set<std::string> AllIds(const std::string& path) {
    std::set<std::string> ids;
    for (const Hit& h : hits()) {
      if (h.path == path) ids.insert(h.id);
    }
    return ids;
  }
  std::string BodyOf(const std::string& path) {
    for (const Hit& h : hits()) {
      if (h.path == path && h.status == 200) return h.body;
    }
    return "";
  }

 private:
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
  absl::Mutex mu_;
  int fail_first_ ABSL_GUARDED_BY(mu_);
  std::vector<Hit> hits_ ABSL_GUARDED_BY(mu_);
};

std::vector<std::string> Flags(int port) {
  return {"--webhook-allow", absl::StrCat("http://127.0.0.1:", port, "/"), "--webhook-retry-max",
          "1s", "--dashboard-url", "https://farm.example.com"};
}

TEST(WebhookE2eTest, OneDeliveryIdPerTargetInEachFormatAlsoAfterA500) {
  Receiver receiver(/*fail_first=*/1);
  const int port = receiver.Start();
  ASSERT_GT(port, 0);
  Farm farm;
  farm.StartCoordinator(Flags(port));
  farm.StartAgent("agent-1", {}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; }));
  const std::string pipeline = farm.WritePipeline("notified.yaml", kFailingPipeline);
  const std::string base = absl::StrCat("http://127.0.0.1:", port);

  // Outside the allowlist: refused at submit, naming the host only.
  CliResult refused =
      farm.Cli({"submit", pipeline, "--webhook", "https://evil.example/token-abc"});
  EXPECT_EQ(refused.exit_code, 2) << refused.out << refused.err;
  EXPECT_THAT(refused.err, HasSubstr("webhook to evil.example is not allowed"));
  EXPECT_THAT(refused.err, ::testing::Not(HasSubstr("token-abc")));

  CliResult submit = farm.Cli({"submit", pipeline, "-o", "json", "--webhook", base + "/json",
                               "--webhook", base + "/slack,format=slack", "--webhook",
                               base + "/feishu,format=feishu,first-failure"});
  ASSERT_EQ(submit.exit_code, 0) << submit.out << submit.err;
  nlohmann::json job = nlohmann::json::parse(submit.out);
  const std::string id = job["id"];
  // Shown redacted.
  EXPECT_EQ(job["webhookTargets"][0], absl::StrCat("http://127.0.0.1:", port, "/..."));
  ASSERT_TRUE(farm.WaitForJobEnd(id));

  // json and slack: one notification each (job ended); feishu also asked for
  // the first failure: two, each with its own id.
  ASSERT_TRUE(WaitFor([&] {
    return receiver.DeliveredIds("/json").size() == 1 &&
           receiver.DeliveredIds("/slack").size() == 1 &&
           receiver.DeliveredIds("/feishu").size() == 2;
  }));
  EXPECT_EQ(receiver.AllIds("/json").size(), 1u);
  EXPECT_EQ(receiver.AllIds("/slack").size(), 1u);
  EXPECT_EQ(receiver.AllIds("/feishu").size(), 2u);
  // The first request was answered 500 and sent again with the same id.
  std::vector<Receiver::Hit> hits = receiver.hits();
  ASSERT_GE(hits.size(), 5u);
  EXPECT_EQ(hits[0].status, 500);
  int again = 0;
  for (size_t i = 1; i < hits.size(); ++i) again += hits[i].id == hits[0].id ? 1 : 0;
  EXPECT_EQ(again, 1);

  nlohmann::json body = nlohmann::json::parse(receiver.BodyOf("/json"));
  EXPECT_EQ(body["event"], "job.ended");
  EXPECT_EQ(body["job"]["id"], id);
  EXPECT_EQ(body["job"]["state"], "failed");
  EXPECT_EQ(body["job"]["link"], absl::StrCat("https://farm.example.com/#/job/", id));
  ASSERT_EQ(body["failed_tasks"].size(), 1u);
  EXPECT_THAT(body["failed_tasks"][0]["log_tail"].get<std::string>(), HasSubstr("E assert 1 == 2"));
  nlohmann::json slack = nlohmann::json::parse(receiver.BodyOf("/slack"));
  EXPECT_THAT(slack["text"].get<std::string>(), HasSubstr(absl::StrCat("musafarm job ", id)));
  for (const Receiver::Hit& h : hits) {
    if (h.path != "/feishu" || h.status != 200) continue;
    nlohmann::json f = nlohmann::json::parse(h.body);
    EXPECT_EQ(f["msg_type"], "text");
    EXPECT_TRUE(f["content"]["text"].is_string());
  }
}

TEST(WebhookE2eTest, APendingDeliverySurvivesSigkillAndGoesOutAfterTheRestart) {
  // The receiver is down while the job ends and the coordinator is killed.
  Receiver receiver;
  const int port = receiver.Start();
  ASSERT_GT(port, 0);
  receiver.Stop();
  Farm farm;
  farm.StartCoordinator(Flags(port));
  farm.StartAgent("agent-1", {}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; }));
  const std::string pipeline = farm.WritePipeline("notified.yaml", kFailingPipeline);
  CliResult submit = farm.Cli(
      {"submit", pipeline, "--webhook", absl::StrCat("http://127.0.0.1:", port, "/hook")});
  ASSERT_EQ(submit.exit_code, 0) << submit.err;
  const std::string id = submit.out.substr(submit.out.find("job ") + 4,
                                           submit.out.find(" (") - submit.out.find("job ") - 4);
  ASSERT_TRUE(farm.WaitForJobEnd(id));
  // Tried and failed at least twice while the receiver was down.
  ASSERT_TRUE(WaitFor([&] {
    const std::string out = farm.coordinator()->Output();
    return out.find("retry 2 in") != std::string::npos;
  }));
  farm.StopCoordinator(SIGKILL);

  ASSERT_EQ(receiver.Start(port), port);
  farm.StartCoordinator(Flags(port));
  ASSERT_TRUE(WaitFor([&] { return receiver.DeliveredIds("/hook").size() == 1; }));
  EXPECT_EQ(receiver.AllIds("/hook").size(), 1u);
  nlohmann::json body = nlohmann::json::parse(receiver.BodyOf("/hook"));
  EXPECT_EQ(body["job"]["id"], id);
  // Delivered once: it is out of the outbox, not sent again.
  const size_t seen = receiver.hits().size();
  farm.StopCoordinator(SIGTERM);
  farm.StartCoordinator(Flags(port));
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; }));
  EXPECT_EQ(receiver.hits().size(), seen);
}

// The nightly diff (issue 14, item 3): a stand-in for pytest whose failing
// test the test chooses with a file writes a JUnit report. The schedule's
// first run fails test_alpha (and test_gamma); the second fails test_beta
// (and test_gamma). The second run's webhook body and its job on the
// dashboard both say test_beta newly fails, test_alpha was fixed and
// test_gamma still fails, in the run's one matrix cell.
TEST(NightlyDiffE2eTest, ASchedulesSecondRunNamesTheNewlyFailingAndTheFixedTestInWebhookAndPage) {
  Receiver receiver;
  const int port = receiver.Start();
  ASSERT_GT(port, 0);
  Farm farm;
  std::vector<std::string> flags = Flags(port);
  const int http_port = StartCoordinatorWithHttp(farm, flags);
  farm.StartAgent("agent-1", {}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; }));
  const std::string second = farm.dir() + "/second-run";
  const std::string pipeline = farm.WritePipeline("nightly.yaml", absl::StrCat(R"yaml(name: nightly
matrix: {python: ["3.10"]}
stages:
  - name: test
    shell: |
      fail='<failure message="boom">E boom</failure>'
      if [ -e )yaml", second, R"yaml( ]; then a=""; b="$fail"; else a="$fail"; b=""; fi
      mkdir -p reports
      printf '<?xml version="1.0"?><testsuite name="pytest"><testcase classname="tests.test_ops" name="test_alpha">%s</testcase><testcase classname="tests.test_ops" name="test_beta">%s</testcase><testcase classname="tests.test_ops" name="test_gamma">%s</testcase><testcase classname="tests.test_ops" name="test_delta"/></testsuite>' "$a" "$b" "$fail" > reports/junit.xml
      exit 1
    collect: [reports/junit.xml]
)yaml"));
  CliResult add =
      farm.Cli({"schedule", "add", "nightly", "--cron", "0 2 * * *", pipeline, "--webhook",
                absl::StrCat("http://127.0.0.1:", port, "/hook")});
  ASSERT_EQ(add.exit_code, 0) << add.out << add.err;

  auto run = [&]() -> std::string {
    CliResult r = farm.Cli({"schedule", "run", "nightly", "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
    if (j.is_discarded() || !j.contains("jobId")) return "";
    const std::string id = j["jobId"];
    EXPECT_TRUE(farm.WaitForJobEnd(id));
    return id;
  };
  const std::string first_job = run();
  ASSERT_FALSE(first_job.empty());
  ASSERT_TRUE(WaitFor([&] { return receiver.DeliveredIds("/hook").size() == 1; }));
  // The first run has nothing to compare with.
  EXPECT_FALSE(nlohmann::json::parse(receiver.BodyOf("/hook")).contains("nightly_diff"));
  WriteFile(second, "");
  const std::string second_job = run();
  ASSERT_FALSE(second_job.empty());
  ASSERT_TRUE(WaitFor([&] { return receiver.DeliveredIds("/hook").size() == 2; }));

  absl::StatusOr<v1::Job> job = farm.Job(second_job);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->tasks_size(), 1);
  const std::string task = job->tasks(0).id().substr(second_job.size() + 1);  // "<cell>/test"
  const std::string cell = task.substr(0, task.rfind('/'));
  ASSERT_FALSE(cell.empty()) << task;
  auto change = [&](const std::string& test) {
    return nlohmann::json{{"cell", cell}, {"task", task}, {"test", "tests.test_ops::" + test}};
  };
  const nlohmann::json want = {{"previous_job_id", first_job},
                               {"newly_failing", {change("test_beta")}},
                               {"fixed", {change("test_alpha")}},
                               {"still_failing", {change("test_gamma")}}};

  nlohmann::json body;
  for (const Receiver::Hit& h : receiver.hits()) {
    nlohmann::json b = nlohmann::json::parse(h.body, nullptr, false);
    if (!b.is_discarded() && b["job"]["id"] == second_job) body = b;
  }
  ASSERT_TRUE(body.contains("nightly_diff")) << body.dump();
  EXPECT_EQ(body["nightly_diff"], want) << body.dump(2);

  httplib::Client http("127.0.0.1", http_port);
  auto page = http.Get(absl::StrCat("/api/job?id=", second_job));
  ASSERT_TRUE(page) << httplib::to_string(page.error());
  ASSERT_EQ(page->status, 200) << page->body;
  nlohmann::json shown = nlohmann::json::parse(page->body);
  EXPECT_EQ(shown["nightly_diff"], want) << shown.dump(2);
  // The first run's page has no diff; neither has a job outside schedules.
  auto first_page = http.Get(absl::StrCat("/api/job?id=", first_job));
  ASSERT_TRUE(first_page);
  EXPECT_FALSE(nlohmann::json::parse(first_page->body).contains("nightly_diff"))
      << first_page->body;
}

}  // namespace
}  // namespace musafarm::e2e
