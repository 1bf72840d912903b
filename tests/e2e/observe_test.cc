// End-to-end tests of what operators watch (issue 13): gRPC health and
// reflection, the HTTP probes, /metrics, against the real coordinator.
#include <signal.h>
#include <sqlite3.h>

#include <filesystem>
#include <functional>
#include <set>
#include <regex>
#include <string>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/harness.h"
#include "tests/e2e/http_port.h"

namespace musafarm::e2e {
namespace {

std::string ToString(const grpc::ByteBuffer& buffer) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return "";
  std::string out;
  for (const grpc::Slice& s : slices) out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  return out;
}

grpc::ByteBuffer FromString(const std::string& bytes) {
  grpc::Slice slice(bytes);
  return grpc::ByteBuffer(&slice, 1);
}

// One unary call by method name with raw protobuf bytes: the test needs no
// generated code for grpc.health.v1, so it checks the wire as any probe sees it.
grpc::Status RawUnary(grpc::GenericStub& stub, const std::string& method, const std::string& req,
                      std::string* resp) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  grpc::ByteBuffer request = FromString(req), response;
  grpc::Status status;
  absl::Notification done;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &request, &response, [&](grpc::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  *resp = ToString(response);
  return status;
}

// grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo with one
// request, returning the first response's bytes.
class OneReflectionCall : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  OneReflectionCall(grpc::GenericStub& stub, const std::string& request) : out_(FromString(request)) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    stub.PrepareBidiStreamingCall(&ctx_, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                  grpc::StubOptions(), this);
    StartWrite(&out_);
    StartRead(&in_);
    StartCall();
  }
  void OnWriteDone(bool) override { StartWritesDone(); }
  void OnReadDone(bool ok) override {
    if (ok) response_ = ToString(in_);
  }
  void OnDone(const grpc::Status& s) override {
    status_ = s;
    done_.Notify();
  }
  std::string Await() {
    done_.WaitForNotification();
    return response_;
  }
  const grpc::Status& status() const { return status_; }

 private:
  grpc::ClientContext ctx_;
  grpc::ByteBuffer out_, in_;
  std::string response_;
  grpc::Status status_;
  absl::Notification done_;
};

TEST(ObserveTest, GrpcHealthSaysServingAndReflectionListsTheServices) {
  Farm farm;
  farm.StartCoordinator();
  auto channel = grpc::CreateChannel(farm.address(), grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  // HealthCheckRequest{service: ""} is empty; HealthCheckResponse{status:
  // SERVING} is field 1 = 1.
  std::string resp;
  grpc::Status s = RawUnary(stub, "/grpc.health.v1.Health/Check", "", &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp, std::string("\x08\x01", 2));
  // The same, naming the user service (field 1, length 23).
  s = RawUnary(stub, "/grpc.health.v1.Health/Check", std::string("\x0a\x17musafarm.v1.UserService"),
               &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(resp, std::string("\x08\x01", 2));
  // An unknown service is NOT_FOUND, as the protocol says.
  s = RawUnary(stub, "/grpc.health.v1.Health/Check", std::string("\x0a\x03nop"), &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);

  // ServerReflectionRequest{list_services: ""} is field 7, empty string.
  OneReflectionCall call(stub, std::string("\x3a\x00", 2));
  const std::string listed = call.Await();
  ASSERT_TRUE(call.status().ok()) << call.status().error_message();
  EXPECT_TRUE(absl::StrContains(listed, "musafarm.v1.UserService")) << listed;
  EXPECT_TRUE(absl::StrContains(listed, "musafarm.v1.AgentService")) << listed;
  EXPECT_TRUE(absl::StrContains(listed, "grpc.health.v1.Health")) << listed;
}

// A backup (or any other process) holding the database's lock stalls recovery:
// the coordinator is alive (/healthz 200) but not ready (/readyz 503) until
// the lock goes and recovery completes.
TEST(ObserveTest, ReadyzIs503DuringRecoveryAnd200After) {
  Farm farm;
  farm.StartCoordinator();  // makes the database
  farm.StopCoordinator(SIGTERM);

  sqlite3* db = nullptr;
  const std::string db_path = farm.data_dir() + "/musafarm.db";
  ASSERT_EQ(sqlite3_open(db_path.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE;", nullptr, nullptr,
                         nullptr),
            SQLITE_OK)
      << sqlite3_errmsg(db);

  const std::string http_port_file = farm.dir() + "/http.port";
  const std::string grpc_port_file = farm.dir() + "/grpc.port";
  auto coordinator = Process::Start(
      {MF_COORDINATOR_BIN, "--insecure", "--listen", "127.0.0.1:0", "--port-file", grpc_port_file,
       "--data-dir", farm.data_dir(), "--http-listen", "127.0.0.1:0", "--http-port-file",
       http_port_file},
      farm.dir() + "/recovering.log");
  ASSERT_TRUE(coordinator.ok()) << coordinator.status();
  ASSERT_TRUE(WaitFor([&] { return std::filesystem::exists(http_port_file); }))
      << (*coordinator)->Output();
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(http_port_file)), &port));
  httplib::Client http("127.0.0.1", port);
  auto healthz = http.Get("/healthz");
  ASSERT_TRUE(healthz);
  EXPECT_EQ(healthz->status, 200);
  auto readyz = http.Get("/readyz");
  ASSERT_TRUE(readyz);
  EXPECT_EQ(readyz->status, 503) << readyz->body;
  EXPECT_FALSE(std::filesystem::exists(grpc_port_file)) << "gRPC served before recovery";

  ASSERT_EQ(sqlite3_exec(db, "COMMIT;", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  ASSERT_TRUE(WaitFor([&] {
    auto r = http.Get("/readyz");
    return r && r->status == 200;
  })) << (*coordinator)->Output();
  // The coordinator sets itself ready, then writes its port file (so whoever
  // waits for the file finds it ready): the file follows the 200 at once.
  EXPECT_TRUE(WaitFor([&] { return std::filesystem::exists(grpc_port_file); }))
      << (*coordinator)->Output();
  (*coordinator)->Signal(SIGTERM);
  EXPECT_EQ((*coordinator)->Wait(absl::Seconds(20)), 0) << (*coordinator)->Output();
}

// The sample lines of a /metrics text: series ("name{labels}") -> value.
std::map<std::string, double> Samples(const std::string& text) {
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "#")) continue;
    const size_t space = line.rfind(' ');
    double v = 0;
    if (space == absl::string_view::npos || !absl::SimpleAtod(line.substr(space + 1), &v)) {
      ADD_FAILURE() << "not a sample: " << line;
      continue;
    }
    out[std::string(line.substr(0, space))] = v;
  }
  return out;
}

// `promtool check metrics` (Debian's prometheus package) on `text`: its exit
// code, and what it said in `out`.
int Promtool(const std::string& dir, const std::string& text, std::string* out) {
  const std::string file = dir + "/metrics.txt";
  WriteFile(file, text);
  // The path is an argument ($0), never part of the script.
  auto p = Process::Start({"/bin/sh", "-c", "exec promtool check metrics < \"$0\"", file},
                          dir + "/promtool.log");
  if (!p.ok()) return -1;
  const int rc = (*p)->Wait(absl::Seconds(60));
  *out = (*p)->Output();
  return rc;
}

TEST(ObserveTest, MetricsPassPromtoolMoveAsJobsRunAndKeepTheirSeriesOverAHundredJobs) {
  Farm farm;
  const std::string port_file = farm.dir() + "/http.port";
  farm.StartCoordinator({"--http-listen", "127.0.0.1:0", "--http-port-file", port_file});
  farm.StartAgent("agent-1", {"os=linux"}, 4);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; }));
  httplib::Client http("127.0.0.1", HttpPort(port_file));
  auto metrics = [&] {
    auto r = http.Get("/metrics");  // --insecure: no token needed, as on the gRPC port
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no answer");
    return r ? r->body : std::string();
  };
  const std::map<std::string, double> before = Samples(metrics());
  EXPECT_EQ(before.at("musafarm_agents{state=\"connected\"}"), 1);
  EXPECT_EQ(before.at("musafarm_jobs_submitted_total"), 0);

  const std::string pipeline = farm.WritePipeline(
      "one.yaml", "stages:\n  - name: s\n    exec: [\"sh\", \"-c\", \"echo hello\"]\n");
  const std::string first = farm.Submit(pipeline);
  ASSERT_TRUE(farm.WaitForJobEnd(first));
  const std::string after_one_text = metrics();
  std::string said;
  EXPECT_EQ(Promtool(farm.dir(), after_one_text, &said), 0) << said << after_one_text;
  const std::map<std::string, double> after_one = Samples(after_one_text);
  EXPECT_EQ(after_one.at("musafarm_jobs_submitted_total"), 1);
  EXPECT_EQ(after_one.at("musafarm_jobs_ended_total{state=\"succeeded\"}"), 1);
  EXPECT_EQ(after_one.at("musafarm_task_transitions_total{to=\"succeeded\"}"), 1);
  EXPECT_EQ(after_one.at("musafarm_tasks{state=\"succeeded\",stage=\"s\"}"), 1);
  EXPECT_GE(after_one.at("musafarm_log_bytes_stored_total"), 6);  // "hello\n"
  EXPECT_EQ(after_one.at("musafarm_task_duration_seconds_count{stage=\"s\"}"), 1);
  EXPECT_EQ(after_one.at("musafarm_task_queue_wait_seconds_count{stage=\"s\"}"), 1);
  EXPECT_EQ(after_one.at("musafarm_dispatch_latency_seconds_count"), 1);
  EXPECT_GT(after_one.at("musafarm_store_commit_seconds_count"),
            before.at("musafarm_store_commit_seconds_count"));
  for (const auto& [series, value] : after_one) {
    EXPECT_FALSE(absl::StrContains(series, "task=") || absl::StrContains(series, "job="))
        << series;
  }

  std::vector<std::string> ids;
  for (int i = 0; i < 99; ++i) ids.push_back(farm.Submit(pipeline));
  for (const std::string& id : ids) ASSERT_TRUE(farm.WaitForJobEnd(id));
  const std::string after_100_text = metrics();
  EXPECT_EQ(Promtool(farm.dir(), after_100_text, &said), 0) << said;
  const std::map<std::string, double> after_100 = Samples(after_100_text);
  EXPECT_EQ(after_100.at("musafarm_jobs_submitted_total"), 100);
  EXPECT_EQ(after_100.at("musafarm_task_transitions_total{to=\"succeeded\"}"), 100);
  EXPECT_EQ(after_100.at("musafarm_tasks{state=\"succeeded\",stage=\"s\"}"), 100);
  // The same series, only their values moved.
  std::set<std::string> series_one, series_100;
  for (const auto& [series, value] : after_one) series_one.insert(series);
  for (const auto& [series, value] : after_100) series_100.insert(series);
  EXPECT_EQ(series_one, series_100);
  EXPECT_EQ(series_one.size(), series_100.size());
}

// A browser tab left open on a live view never holds up a coordinator's stop:
// the stream gets its events, then ends when the coordinator stops.
TEST(ObserveTest, AnOpenEventStreamEndsWhenTheCoordinatorStops) {
  Farm farm;
  const std::string port_file = farm.dir() + "/http.port";
  farm.StartCoordinator({"--http-listen", "127.0.0.1:0", "--http-port-file", port_file});
  farm.StartAgent("agent-1", {"os=linux"}, 1);
  const std::string gate = farm.dir() + "/gate";
  const std::string job = SubmitGatedJob(farm, gate);
  ASSERT_FALSE(::testing::Test::HasFailure());
  // What the "tab" (a plain HTTP client on its own thread) has read.
  struct Tab {
    absl::Mutex mu;
    std::string received ABSL_GUARDED_BY(mu);
    bool ended ABSL_GUARDED_BY(mu) = false;
    bool HasSnapshot() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return absl::StrContains(received, "event: snapshot");
    }
  } tab;
  std::thread reader([&] {
    httplib::Client http("127.0.0.1", HttpPort(port_file));
    http.set_read_timeout(60, 0);
    http.Get(absl::StrCat("/api/job-events?id=", job), [&](const char* data, size_t n) {
      absl::MutexLock lock(&tab.mu);
      tab.received.append(data, n);
      return true;
    });
    absl::MutexLock lock(&tab.mu);
    tab.ended = true;
  });
  {
    absl::MutexLock lock(&tab.mu);
    ASSERT_TRUE(tab.mu.AwaitWithTimeout(absl::Condition(&tab, &Tab::HasSnapshot), absl::Seconds(30)))
        << tab.received;
  }
  farm.StopCoordinator(SIGTERM);  // asserts it exits within 20 s
  EXPECT_EQ(farm.coordinator()->Wait(absl::Seconds(1)), 0) << farm.coordinator()->Output();
  reader.join();
  WriteFile(gate, "");  // lets the agent's task end, so the agent stops at once
  absl::MutexLock lock(&tab.mu);
  EXPECT_TRUE(tab.ended);
}

TEST(ObserveTest, MetricsNeedATokenOnATlsFarmUnlessPublic) {
  Farm farm(TlsFarm());
  const std::string port_file = farm.dir() + "/http.port";
  farm.StartCoordinator({"--http-listen", "127.0.0.1:0", "--http-port-file", port_file});
  httplib::SSLClient https("127.0.0.1", HttpPort(port_file));
  https.set_ca_cert_path(farm.ca_file());
  https.enable_server_certificate_verification(true);
  auto r = https.Get("/metrics");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 401) << r->body;
  EXPECT_TRUE(absl::StrContains(r->body, "no API token")) << r->body;
  r = https.Get("/readyz");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);

  farm.StopCoordinator(SIGTERM);
  farm.StartCoordinator(
      {"--http-listen", "127.0.0.1:0", "--http-port-file", port_file, "--metrics-public"});
  httplib::SSLClient again("127.0.0.1", HttpPort(port_file));
  again.set_ca_cert_path(farm.ca_file());
  again.enable_server_certificate_verification(true);
  r = again.Get("/metrics");
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  // Prometheus's build_info convention: version and revision, as --version prints them.
  EXPECT_TRUE(std::regex_search(
      r->body, std::regex("\nmusafarm_build_info\\{version=\"[0-9]+\\.[0-9]+\\.[0-9]+\",revision=\"([0-9a-f]{7,}(-dirty)?|unknown)\"\\} 1\n")))
      << r->body;
}

// The dashboard's cancel decides as the gRPC Cancel does (coordinator/
// user_actions.h): a submitter cancels their own job and not another's, and
// both attempts are in the audit log, from the HTTP peer.
TEST(ObserveTest, DashboardCancelIsAllowedForTheJobsSubmitterOnlyAndAudited) {
  Farm farm(TlsFarm());
  const std::string port_file = farm.dir() + "/http.port";
  farm.StartCoordinator({"--http-listen", "127.0.0.1:0", "--http-port-file", port_file});
  const std::string sam = farm.MakeToken("sam", "submitter");
  const std::string sue = farm.MakeToken("sue", "submitter");
  // No agent has the label: the job stays queued until cancelled.
  const std::string pipeline = farm.WritePipeline(
      "queued.yaml", "stages:\n  - name: s\n    exec: [\"true\"]\n    labels: [nowhere]\n");
  CliResult submitted = farm.CliWithToken(sam, {"submit", pipeline, "-o", "json"});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.err;
  const std::string job = nlohmann::json::parse(submitted.out).value("id", "");
  ASSERT_FALSE(job.empty()) << submitted.out;

  httplib::SSLClient https("127.0.0.1", HttpPort(port_file));
  https.set_ca_cert_path(farm.ca_file());
  https.enable_server_certificate_verification(true);
  auto cancel_as = [&](const std::string& token) -> int {
    httplib::Headers headers = {{"Authorization", "Bearer " + token}};
    auto session = https.Get("/api/session", headers);
    if (!session || session->status != 200) return -1;
    headers.emplace("X-CSRF-Token", nlohmann::json::parse(session->body).value("csrf", ""));
    auto r = https.Post(absl::StrCat("/api/cancel?id=", job).c_str(), headers, "", "text/plain");
    return r ? r->status : -1;
  };
  EXPECT_EQ(cancel_as(sue), 403);
  absl::StatusOr<v1::Job> still = farm.Job(job);
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_EQ(still->state(), v1::JOB_STATE_RUNNING);  // its task still queued
  EXPECT_EQ(cancel_as(sam), 200);
  ASSERT_TRUE(farm.WaitForJobEnd(job));
  EXPECT_EQ(farm.Job(job)->state(), v1::JOB_STATE_CANCELLED);

  CliResult audit = farm.Cli({"audit", "-o", "json", "-n", "100"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  std::vector<std::string> cancels;
  for (absl::string_view line : absl::StrSplit(audit.out, '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.value("action", "") != "cancel") continue;
    EXPECT_EQ(j.value("target", ""), job) << line;
    EXPECT_TRUE(absl::StartsWith(j.value("peer", ""), "http:")) << line;
    cancels.push_back(j.value("user", "") + " " + j.value("outcome", "").substr(0, 6));
  }
  EXPECT_EQ(cancels, (std::vector<std::string>{"sue denied", "sam ok"})) << audit.out;
}

// The acceptance run of the dashboard (issue 13): Debian's headless Chromium
// against a TLS farm, driven by tests/e2e/dashboard_browser.py. Screenshots land
// in <build>/tests/dashboard-screenshots/.
TEST(ObserveTest, DashboardInChromium) {
  Farm farm(TlsFarm());
  const std::string port_file = farm.dir() + "/http.port";
  farm.StartCoordinator({"--http-listen", "127.0.0.1:0", "--http-port-file", port_file});
  farm.StartAgent("agent-1", {"os=linux"}, 4);
  const std::string admin = farm.MakeToken("alice", "admin");
  const std::string viewer = farm.MakeToken("victor", "viewer");
  const std::string gates = farm.dir() + "/gates";
  std::filesystem::create_directories(gates);
  const std::string pipeline = farm.WritePipeline("xss.yaml", absl::StrCat(R"(
name: "<img src=x onerror=window.pwned=1>"
matrix:
  variant: ["dev"]
  python: ["3.10", "3.11"]
stages:
  - name: build
    exec: ["sh", "-c", "printf 'plain \\033[32mgreen\\033[0m plain\\n'; echo 'waiting for the gate'; while [ ! -e )",
                                                                      gates, R"(/gate-${python} ]; do sleep 0.05; done; echo '<img src=x onerror=window.pwned=1>'; echo 'through the gate'"]
  - name: test
    needs: [build]
    exec: ["echo", "tested"]
)"));
  const std::string job = farm.Submit(pipeline);
  // A 50 MB log (500,000 lines of 100 bytes), then a marker line.
  const std::string big = farm.Submit(farm.WritePipeline(
      "big.yaml", "stages:\n  - name: big\n    exec: [\"sh\", \"-c\", \"yes "
                  "0123456789012345678901234567890123456789012345678901234567890123456789"
                  "01234567890123456789012345678 | head -n 500000; echo LAST-LINE\"]\n"));
  ASSERT_TRUE(farm.WaitForJobEnd(big, absl::Seconds(180)));
  absl::StatusOr<v1::Job> big_job = farm.Job(big);
  ASSERT_TRUE(big_job.ok()) << big_job.status();
  ASSERT_EQ(big_job->tasks(0).state(), v1::TASK_STATE_SUCCEEDED) << big_job->tasks(0).reason();
  ASSERT_GE(big_job->tasks(0).log_size(), 50'000'000u);
  // A schedule's second run whose newly failing test has markup for a name:
  // the job page lists it in its nightly diff, as text.
  const std::string second = farm.dir() + "/second-run";
  const std::string nightly = farm.WritePipeline("nightly.yaml", absl::StrCat(R"yaml(name: nightly
stages:
  - name: test
    exec:
      - sh
      - -c
      - |
        r=""; [ -e )yaml", second, R"yaml( ] && r='<failure message="boom"/>'
        mkdir -p reports
        printf '<testsuite name="pytest"><testcase classname="t" name="&lt;img src=x onerror=window.pwned=1&gt;">%s</testcase></testsuite>' "$r" > reports/junit.xml
    collect: [reports/junit.xml]
)yaml"));
  const std::string src = farm.dir() + "/src";
  std::filesystem::create_directories(src);
  WriteFile(src + "/msg.txt", "hello\n");
  CliResult add = farm.Cli({"schedule", "add", "xss-nightly", "--cron", "0 2 * * *", nightly,
                            "--context", "src=" + src});
  ASSERT_EQ(add.exit_code, 0) << add.out << add.err;
  std::string diff_job;
  for (int i = 0; i < 2; ++i) {
    if (i == 1) WriteFile(second, "");
    CliResult run = farm.Cli({"schedule", "run", "xss-nightly", "-o", "json"});
    ASSERT_EQ(run.exit_code, 0) << run.out << run.err;
    diff_job = nlohmann::json::parse(run.out).value("jobId", "");
    ASSERT_TRUE(farm.WaitForJobEnd(diff_job));
  }
  const std::string shots = std::string(MF_BUILD_DIR) + "/tests/dashboard-screenshots";
  auto browser = Process::Start(
      {"/usr/bin/python3", std::string(MF_SOURCE_DIR) + "/tests/e2e/dashboard_browser.py", "--url",
       absl::StrCat("https://127.0.0.1:", HttpPort(port_file)), "--ca", farm.ca_file(),
       "--server-cert", farm.data_dir() + "/pki/server.crt", "--admin-token", admin,
       "--viewer-token", viewer, "--job", job, "--gate-dir", gates, "--out", shots,
       "--big-task", big_job->tasks(0).id(), "--diff-job", diff_job},
      farm.dir() + "/browser.log");
  ASSERT_TRUE(browser.ok()) << browser.status();
  EXPECT_EQ((*browser)->Wait(absl::Seconds(240)), 0) << (*browser)->Output();
  for (const char* shot : {"jobs-1366x768.png", "job-1366x768.png", "job-390x844.png"}) {
    EXPECT_TRUE(std::filesystem::exists(shots + "/" + shot)) << shot;
  }
  EXPECT_TRUE(farm.WaitForJobEnd(job));
}

// The dashboard's artifact download, byte for byte: a docker_run stage on a
// real private dockerd collects a file; Chromium downloads it from the task page.
TEST(ObserveTest, DashboardDownloadsAnArtifactInChromium) {
  const std::string scripts = std::string(MF_SOURCE_DIR) + "/scripts/docker";
  // Not a skip: scripts/test.sh installs Docker, and a missing engine must not pass.
  ASSERT_TRUE(std::filesystem::exists("/usr/sbin/dockerd"))
      << "Docker Engine not installed: run scripts/docker/install.sh";
  Farm farm(TlsFarm());
  const std::string dockerd = farm.dir() + "/dockerd";
  auto run = [&](const std::vector<std::string>& argv, const std::string& log) {
    auto p = Process::Start(argv, log);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? (*p)->Wait(absl::Seconds(120)) : -1;
  };
  ASSERT_EQ(run({scripts + "/dockerd.sh", "start", dockerd}, dockerd + ".log"), 0)
      << ReadFile(dockerd + ".log");
  struct StopDockerd {
    std::function<void()> stop;
    ~StopDockerd() { stop(); }
  } stop_dockerd{[&] { run({scripts + "/dockerd.sh", "stop", dockerd}, dockerd + "-stop.log"); }};
  std::string host = std::string(absl::StripAsciiWhitespace(ReadFile(dockerd + "/docker-host")));
  host = std::string(absl::StripPrefix(host, "DOCKER_HOST="));
  ASSERT_EQ(run({scripts + "/busybox-image.sh", host, "musafarm/busybox:test"},
                dockerd + "-image.log"),
            0)
      << ReadFile(dockerd + "-image.log");
  const std::string port_file = farm.dir() + "/http.port";
  farm.StartCoordinator({"--http-listen", "127.0.0.1:0", "--http-port-file", port_file});
  farm.StartAgent("agent-d", {"os=linux"}, 2, {"--docker", "--docker-host", host});
  const std::string admin = farm.MakeToken("alice", "admin");
  // 300 KB of random bytes (every byte value), made in the container.
  const std::string job = farm.Submit(farm.WritePipeline("artifact.yaml", R"(
stages:
  - name: make
    docker_run:
      image: musafarm/busybox:test
      command: ["sh", "-c", "head -c 300000 /dev/urandom > /out.bin"]
      network: none
      collect: ["/out.bin"]
)"));
  ASSERT_TRUE(farm.WaitForJobEnd(job, absl::Seconds(180)));
  absl::StatusOr<v1::Job> done = farm.Job(job);
  ASSERT_TRUE(done.ok()) << done.status();
  ASSERT_EQ(done->tasks_size(), 1);
  const v1::Task& task = done->tasks(0);
  ASSERT_EQ(task.state(), v1::TASK_STATE_SUCCEEDED) << task.reason();
  ASSERT_EQ(task.artifacts_size(), 1);
  // What the coordinator stored, fetched by the CLI: the bytes the browser must get.
  const std::string expect = farm.dir() + "/expected/out.bin";
  CliResult fetched = farm.Cli({"artifacts", task.id(), "--dir", farm.dir() + "/expected"});
  ASSERT_EQ(fetched.exit_code, 0) << fetched.out << fetched.err;
  ASSERT_GT(std::filesystem::file_size(expect), 250'000u);
  const std::string shots = std::string(MF_BUILD_DIR) + "/tests/dashboard-screenshots";
  auto browser = Process::Start(
      {"/usr/bin/python3", std::string(MF_SOURCE_DIR) + "/tests/e2e/dashboard_browser.py", "--url",
       absl::StrCat("https://127.0.0.1:", HttpPort(port_file)), "--ca", farm.ca_file(),
       "--server-cert", farm.data_dir() + "/pki/server.crt", "--admin-token", admin, "--job", job,
       "--out", shots, "--artifact-task", task.id(), "--artifact-name", "out.bin",
       "--artifact-expect", expect},
      farm.dir() + "/browser.log");
  ASSERT_TRUE(browser.ok()) << browser.status();
  EXPECT_EQ((*browser)->Wait(absl::Seconds(240)), 0) << (*browser)->Output();
}

}  // namespace
}  // namespace musafarm::e2e
