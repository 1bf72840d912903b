// End-to-end tests of the dashboard's HTTP API against the real coordinator
// (issue 13): the cap on live event streams and the server-side job filters.
// The browser's view of the same routes is ObserveTest.DashboardInChromium.
#include <algorithm>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/harness.h"
#include "tests/e2e/http_port.h"

namespace musafarm::e2e {
namespace {

// A browser tab's live view: GETs an event stream on its own thread and keeps
// the status and everything it read, until the stream ends or Close().
class EventTab {
 public:
  EventTab(int port, std::string path)
      : thread_([this, port, path = std::move(path)] {
          httplib::Client http("127.0.0.1", port);
          http.set_read_timeout(120, 0);
          http.Get(
              path,
              [this](const httplib::Response& r) {
                absl::MutexLock lock(&mu_);
                status_ = r.status;
                return true;
              },
              [this](const char* data, size_t n) {
                absl::MutexLock lock(&mu_);
                received_.append(data, n);
                return !close_;  // false drops the connection, as a closed tab does
              });
          absl::MutexLock lock(&mu_);
          ended_ = true;
        }) {}
  ~EventTab() {
    Close();
    thread_.join();
  }
  void Close() {
    absl::MutexLock lock(&mu_);
    close_ = true;
  }
  // Waits until what the tab read holds `text` (true), or it ended without.
  bool WaitFor(const std::string& text, absl::Duration timeout = absl::Seconds(60)) {
    absl::MutexLock lock(&mu_);
    auto seen = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return absl::StrContains(received_, text) || ended_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&seen), timeout);
    return absl::StrContains(received_, text);
  }
  bool WaitEnded(absl::Duration timeout = absl::Seconds(60)) {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&ended_), timeout);
    return ended_;
  }
  int status() {
    absl::MutexLock lock(&mu_);
    return status_;
  }
  std::string received() {
    absl::MutexLock lock(&mu_);
    return received_;
  }

 private:
  absl::Mutex mu_;
  int status_ ABSL_GUARDED_BY(mu_) = 0;
  std::string received_ ABSL_GUARDED_BY(mu_);
  bool close_ ABSL_GUARDED_BY(mu_) = false;
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts once the fields above exist
};

// At most 8 event streams at once (each holds one of the HTTP pool's threads):
// a 9th is refused 503 while the 8 keep streaming, and a slot a closed tab
// frees serves the next one.
TEST(DashboardApiTest, ANinthEventStreamIs503WhileEightKeepStreamingAndAFreedSlotServesAgain) {
  Farm farm;
  const int port = StartCoordinatorWithHttp(farm);
  farm.StartAgent("agent-1", {"os=linux"}, 1);
  const std::string gate = farm.dir() + "/gate";
  const std::string job = SubmitGatedJob(farm, gate);
  ASSERT_FALSE(::testing::Test::HasFailure());
  const std::string events = absl::StrCat("/api/job-events?id=", job);

  std::vector<std::unique_ptr<EventTab>> tabs;
  for (int i = 0; i < 8; ++i) {
    tabs.push_back(std::make_unique<EventTab>(port, events));
    ASSERT_TRUE(tabs.back()->WaitFor("event: snapshot")) << i << ": " << tabs.back()->received();
    EXPECT_EQ(tabs.back()->status(), 200);
  }
  httplib::Client http("127.0.0.1", port);
  auto ninth = http.Get(events);
  ASSERT_TRUE(ninth) << httplib::to_string(ninth.error());
  EXPECT_EQ(ninth->status, 503) << ninth->body;
  EXPECT_TRUE(absl::StrContains(ninth->body, "too many live views")) << ninth->body;
  // The log stream counts against the same cap.
  auto ninth_log = http.Get(absl::StrCat("/api/log-events?task=", job, "/s"));
  ASSERT_TRUE(ninth_log);
  EXPECT_EQ(ninth_log->status, 503) << ninth_log->body;
  // Ordinary requests still get a pool thread.
  auto jobs = http.Get("/api/jobs");
  ASSERT_TRUE(jobs);
  EXPECT_EQ(jobs->status, 200) << jobs->body;

  // A closed tab's slot comes back once the server's next write finds the
  // connection gone (its idle comment, every 2 s): then a new stream is served.
  tabs.front()->Close();
  ASSERT_TRUE(tabs.front()->WaitEnded());
  tabs.erase(tabs.begin());
  std::unique_ptr<EventTab> next;
  ASSERT_TRUE(WaitFor(
      [&] {
        next = std::make_unique<EventTab>(port, events);
        return next->WaitFor("event: snapshot", absl::Seconds(10)) && next->status() == 200;
      },
      absl::Seconds(60)))
      << next->status() << " " << next->received();
  tabs.push_back(std::move(next));
  auto still_full = http.Get(events);
  ASSERT_TRUE(still_full);
  EXPECT_EQ(still_full->status, 503) << still_full->body;

  // All 8 live views (7 first ones and the new one) see the task finish.
  WriteFile(gate, "");
  for (size_t i = 0; i < tabs.size(); ++i) {
    EXPECT_TRUE(tabs[i]->WaitFor("event: finished")) << i << ": " << tabs[i]->received();
    EXPECT_TRUE(absl::StrContains(tabs[i]->received(), "TASK_STATE_SUCCEEDED")) << i;
  }
}

// The job list's submitter filter runs on the coordinator (ListJobs by
// submitter, as `musafarm jobs --user`), not in the browser over a page of all
// jobs.
TEST(DashboardApiTest, TheJobListFiltersBySubmitterOnTheServer) {
  Farm farm(TlsFarm());
  const int port = StartCoordinatorWithHttp(farm);
  const std::string sam = farm.MakeToken("sam", "submitter");
  const std::string sue = farm.MakeToken("sue", "submitter");
  // No agent has the label: the jobs stay queued.
  const std::string pipeline = farm.WritePipeline(
      "queued.yaml", "stages:\n  - name: s\n    exec: [\"true\"]\n    labels: [nowhere]\n");
  auto submit_as = [&](const std::string& token) {
    CliResult r = farm.CliWithToken(token, {"submit", pipeline, "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return nlohmann::json::parse(r.out).value("id", "");
  };
  const std::string sams = submit_as(sam);
  const std::string sues = submit_as(sue);
  const std::string sams_second = submit_as(sam);

  httplib::SSLClient https("127.0.0.1", port);
  https.set_ca_cert_path(farm.ca_file());
  https.enable_server_certificate_verification(true);
  const httplib::Headers viewer = {{"Authorization", "Bearer " + farm.MakeToken("vic", "viewer")}};
  auto ids = [&](const std::string& query) {
    auto r = https.Get("/api/jobs" + query, viewer);
    std::vector<std::string> out;
    if (!r || r->status != 200) {
      ADD_FAILURE() << query << ": " << (r ? r->body : httplib::to_string(r.error()));
      return out;
    }
    for (const auto& job : nlohmann::json::parse(r->body)) out.push_back(job.value("id", ""));
    std::sort(out.begin(), out.end());
    return out;
  };
  std::vector<std::string> sams_jobs = {sams, sams_second};
  std::sort(sams_jobs.begin(), sams_jobs.end());
  EXPECT_EQ(ids("?user=sam"), sams_jobs);
  EXPECT_EQ(ids("?user=sue"), std::vector<std::string>{sues});
  EXPECT_EQ(ids("?user=sa"), std::vector<std::string>{});  // a submitter, not a substring
  EXPECT_EQ(ids("?user=nobody"), std::vector<std::string>{});
  EXPECT_EQ(ids("").size(), 3u);
  EXPECT_EQ(ids("?user=sue&state=running"), std::vector<std::string>{sues});
  EXPECT_EQ(ids("?user=sue&state=succeeded"), std::vector<std::string>{});
}

// Issue 16, item 1: the dashboard's job JSON carries why a queued task waits
// (the grid's chip title and the task page show it).
TEST(DashboardApiTest, AQueuedTaskSaysWhyItWaits) {
  Farm farm(TlsFarm());
  const int port = StartCoordinatorWithHttp(farm);
  farm.StartAgent("agent-1", {"os=linux"}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; })) << "agent did not register";
  const std::string pipeline = farm.WritePipeline(
      "queued.yaml", "stages:\n  - name: s\n    exec: [\"true\"]\n    labels: [role=dev]\n");
  CliResult submitted = farm.Cli({"submit", pipeline, "-o", "json"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  EXPECT_TRUE(absl::StrContains(submitted.err, "no connected agent with label role=dev"))
      << submitted.err;
  const std::string id = nlohmann::json::parse(submitted.out).value("id", "");

  httplib::SSLClient https("127.0.0.1", port);
  https.set_ca_cert_path(farm.ca_file());
  https.enable_server_certificate_verification(true);
  auto r = https.Get("/api/job?id=" + id,
                     {{"Authorization", "Bearer " + farm.MakeToken("vic", "viewer")}});
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  ASSERT_EQ(r->status, 200) << r->body;
  const nlohmann::json job = nlohmann::json::parse(r->body);
  ASSERT_EQ(job["tasks"].size(), 1u) << r->body;
  EXPECT_EQ(job["tasks"][0].value("state", ""), "TASK_STATE_QUEUED") << r->body;
  EXPECT_EQ(job["tasks"][0].value("wait_reason", ""), "no connected agent with label role=dev")
      << r->body;
}

// Issue 13's rerun buttons: /api/job says whether the caller may rerun the job
// (the page shows Rerun and Rerun failed only then), and POST /api/rerun
// decides as the gRPC Rerun does: without the CSRF token or as a viewer it is
// refused (403) and creates nothing; the job's submitter gets the new job.
TEST(DashboardApiTest, RerunIsOfferedToWhoMayAndPostedWithTheCsrfToken) {
  Farm farm(TlsFarm());
  const int port = StartCoordinatorWithHttp(farm);
  farm.StartAgent("agent-1", {}, 2);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; })) << "agent did not register";
  const std::string sam = farm.MakeToken("sam", "submitter");
  const std::string sue = farm.MakeToken("sue", "submitter");
  const std::string vic = farm.MakeToken("vic", "viewer");
  const std::string pipeline = farm.WritePipeline("bt.yaml", kOneFailingCellPipeline);
  CliResult submitted = farm.CliWithToken(sam, {"submit", pipeline, "-o", "json"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string old = nlohmann::json::parse(submitted.out).value("id", "");
  ASSERT_TRUE(farm.WaitForJobEnd(old));

  httplib::SSLClient https("127.0.0.1", port);
  https.set_ca_cert_path(farm.ca_file());
  https.enable_server_certificate_verification(true);
  auto headers = [&](const std::string& token, bool csrf) {
    httplib::Headers h = {{"Authorization", "Bearer " + token}};
    if (!csrf) return h;
    auto session = https.Get("/api/session", h);
    EXPECT_TRUE(session && session->status == 200);
    if (session) h.emplace("X-CSRF-Token", nlohmann::json::parse(session->body).value("csrf", ""));
    return h;
  };
  auto may_rerun = [&](const std::string& token) {
    auto r = https.Get("/api/job?id=" + old, headers(token, false));
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : httplib::to_string(r.error()));
    return r && nlohmann::json::parse(r->body).value("may_rerun", false);
  };
  EXPECT_TRUE(may_rerun(sam));
  EXPECT_FALSE(may_rerun(sue));
  EXPECT_FALSE(may_rerun(vic));
  EXPECT_TRUE(may_rerun(farm.admin_token()));

  auto job_count = [&] { return farm.Cli({"jobs", "-o", "json"}).out; };
  const std::string before = job_count();
  const std::string path = "/api/rerun?id=" + old + "&failed=1";
  auto r = https.Post(path.c_str(), headers(sam, false), "", "text/plain");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_TRUE(absl::StrContains(r->body, "CSRF")) << r->body;
  r = https.Post(path.c_str(), headers(vic, true), "", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403) << r->body;
  r = https.Post(path.c_str(), headers(sue, true), "", "text/plain");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_EQ(job_count(), before) << "a refused rerun created a job";

  r = https.Post(path.c_str(), headers(sam, true), "", "text/plain");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const nlohmann::json created = nlohmann::json::parse(r->body);
  const std::string n = created.value("id", "");
  EXPECT_EQ(created.value("rerun_of", ""), old) << r->body;
  EXPECT_EQ(created.value("submitter", ""), "sam") << r->body;
  absl::StatusOr<v1::Job> rerun = farm.Job(n);
  ASSERT_TRUE(rerun.ok()) << rerun.status();
  std::vector<std::string> tasks;
  for (const v1::Task& t : rerun->tasks()) tasks.push_back(t.id());
  EXPECT_EQ(tasks, (std::vector<std::string>{n + "/3.9/build", n + "/3.9/test"}));

  CliResult audit = farm.Cli({"audit", "-o", "json", "-n", "100"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  std::vector<std::string> reruns;
  for (absl::string_view line : absl::StrSplit(audit.out, '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.value("action", "") != "rerun") continue;
    EXPECT_TRUE(absl::StartsWith(j.value("peer", ""), "http:")) << line;
    reruns.push_back(j.value("user", "") + " " + j.value("target", "") + " " +
                     j.value("outcome", "").substr(0, 6));
  }
  EXPECT_EQ(reruns, (std::vector<std::string>{"vic " + old + " denied", "sue " + old + " denied",
                                              "sam " + old + " as " + n + " ok"}))
      << audit.out;
}

}  // namespace
}  // namespace musafarm::e2e
