// Two coordinators on one PostgreSQL database (issue 20), through the real
// binaries and raw gRPC clients: the standby answers every call UNAVAILABLE
// naming the active one, takes over when the active is SIGKILLed, and a
// SIGSTOPped active that wakes after the takeover writes nothing: its next
// commit is refused by the leader epoch. Takeover times are printed, not
// asserted. `musafarm coordinators`, asked of the standby, lists both with
// their roles, and the killed active as gone after the takeover. (The
// failover of agents and the CLI is tests/e2e/failover_test.)
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "musafarm/v1/agent_service.grpc.pb.h"
#include "musafarm/v1/user_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/harness.h"
#include "tests/support/private_postgres.h"

extern char** environ;

namespace musafarm::e2e {
namespace {

constexpr char kActiveKey[] = "musafarm-active-coordinator";

struct Coordinator {
  std::unique_ptr<Process> process;
  int port = 0;
  std::string address() const { return absl::StrCat("127.0.0.1:", port); }
};

// What one raw call got back.
struct Answer {
  grpc::Status status;
  std::string active;  // the musafarm-active-coordinator trailer, "" if none
};

Answer Trailer(const grpc::ClientContext& ctx, grpc::Status status) {
  Answer a{std::move(status), ""};
  const auto& md = ctx.GetServerTrailingMetadata();
  if (auto it = md.find(kActiveKey); it != md.end()) a.active.assign(it->second.data(), it->second.size());
  return a;
}

Answer ListAgents(const std::string& address) {
  auto stub = v1::UserService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  v1::ListAgentsRequest req;
  v1::ListAgentsResponse resp;
  grpc::Status s = stub->ListAgents(&ctx, req, &resp);
  return Trailer(ctx, s);
}

Answer AgentConnect(const std::string& address) {
  auto stub = v1::AgentService::NewStub(
      grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  auto stream = stub->Connect(&ctx);
  stream->WritesDone();
  grpc::Status s = stream->Finish();
  return Trailer(ctx, s);
}

// `musafarm --insecure -c TARGETS ARGS...`: its exit code, stdout and stderr
// together in *output. Each run logs to a file of its own, LOG.N (a log file
// is appended to, and *output is read from it).
int Musafarm(const std::string& targets, const std::vector<std::string>& args,
             const std::string& log, std::string* output) {
  static int runs = 0;
  std::vector<std::string> argv = {MF_CLI_BIN, "--insecure", "-c", targets};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunToExit(argv, absl::StrCat(log, ".", ++runs), output);
}

// `musafarm coordinators -o json` as "ADDRESS=ROLE@EPOCH" per coordinator, in
// its order; {"exit N: OUTPUT"} when it failed.
std::vector<std::string> ListedCoordinators(const std::string& targets, const std::string& log,
                                            std::string* answered_by = nullptr) {
  std::string output;
  const int rc = Musafarm(targets, {"coordinators", "-o", "json"}, log, &output);
  if (rc != 0) return {absl::StrCat("exit ", rc, ": ", output)};
  const nlohmann::json doc = nlohmann::json::parse(output, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return {absl::StrCat("not JSON: ", output)};
  std::vector<std::string> out;
  for (const nlohmann::json& c : doc["coordinators"]) {
    // int64 is a JSON string in the proto3 mapping.
    const nlohmann::json& epoch = c["epoch"];
    out.push_back(absl::StrCat(c["address"].get<std::string>(), "=", c["role"].get<std::string>(),
                               "@", epoch.is_string() ? epoch.get<std::string>() : epoch.dump()));
  }
  if (answered_by != nullptr) *answered_by = doc["answeredBy"].get<std::string>();
  return out;
}

// The rows of `sql` in `url`, columns joined by '|'.
std::vector<std::string> Rows(const std::string& url, const std::string& sql) {
  absl::StatusOr<std::vector<std::string>> rows = test_support::QueryRows(url, sql);
  if (!rows.ok()) ADD_FAILURE() << rows.status();
  return rows.ok() ? *rows : std::vector<std::string>{""};
}

class LeadershipE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> url = test_support::NewTestDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    char tmpl[] = "/tmp/mf-leader-e2e.XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    coordinators_.clear();  // SIGKILLs what still runs
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  // Starts coordinator `name` on the database; returns once it serves (its
  // port file is written as active and as standby alike).
  Coordinator* Start(const std::string& name, const std::vector<std::string>& extra = {},
                     std::vector<std::string> env = {}) {
    const std::string port_file = absl::StrCat(dir_, "/", name, ".port");
    std::vector<std::string> argv = {MF_COORDINATOR_BIN, "--insecure",  "--listen",
                                     "127.0.0.1:0",      "--port-file", port_file,
                                     "--data-dir",       absl::StrCat(dir_, "/", name),
                                     "--store",          url_};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = Process::Start(argv, absl::StrCat(dir_, "/", name, ".log"), std::move(env));
    if (!p.ok()) {
      ADD_FAILURE() << p.status();
      return nullptr;
    }
    auto c = std::make_unique<Coordinator>();
    c->process = *std::move(p);
    if (!WaitFor([&] {
          return std::filesystem::exists(port_file) || !c->process->Running();
        }) ||
        !c->process->Running()) {
      ADD_FAILURE() << name << " did not start: " << c->process->Output();
      return nullptr;
    }
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(port_file)), &c->port)) {
      ADD_FAILURE() << "port file of " << name;
      return nullptr;
    }
    coordinators_.push_back(std::move(c));
    return coordinators_.back().get();
  }

  // Waits until `c` answers the user API as the active coordinator.
  bool WaitForActive(Coordinator* c, absl::Duration timeout) {
    return WaitFor([&] { return ListAgents(c->address()).status.ok(); }, timeout);
  }

  std::string url_;
  std::string dir_;
  std::vector<std::unique_ptr<Coordinator>> coordinators_;
};

TEST_F(LeadershipE2eTest, TheStandbyNamesTheActiveAndTakesOverWhenItIsKilled) {
  Coordinator* a = Start("a");
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(WaitForActive(a, absl::Seconds(30))) << a->process->Output();
  const std::string b_http_port_file = dir_ + "/b.http-port";
  Coordinator* b = Start("b", {"--http-listen", "127.0.0.1:0", "--http-port-file",
                               b_http_port_file});
  ASSERT_NE(b, nullptr);

  // Its HTTP side: alive, not ready, saying where the active one is; its
  // metrics are the leadership's.
  int b_http_port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(b_http_port_file)),
                               &b_http_port));
  httplib::Client http("127.0.0.1", b_http_port);
  const std::string note = absl::StrCat("standby coordinator; the active coordinator is at ",
                                        a->address());
  auto healthz = http.Get("/healthz");
  ASSERT_TRUE(healthz);
  EXPECT_EQ(healthz->status, 200);
  EXPECT_EQ(healthz->body, absl::StrCat("ok: ", note, "\n"));
  auto readyz = http.Get("/readyz");
  ASSERT_TRUE(readyz);
  EXPECT_EQ(readyz->status, 503);
  EXPECT_EQ(readyz->body, note + "\n");
  auto metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200) << metrics->body;
  EXPECT_TRUE(absl::StrContains(metrics->body, "\nmusafarm_coordinator_leader 0\n"))
      << metrics->body;

  // Every call on the standby: UNAVAILABLE with the active's address.
  for (const Answer& answer : {ListAgents(b->address()), AgentConnect(b->address())}) {
    EXPECT_EQ(answer.status.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_EQ(answer.status.error_message(),
              absl::StrCat("standby coordinator; the active coordinator is at ", a->address()));
    EXPECT_EQ(answer.active, a->address());
  }
  // The active records its address and epoch; the standby is seen.
  EXPECT_EQ(Rows(url_, "SELECT epoch, address FROM leadership"),
            std::vector<std::string>{absl::StrCat("1|", a->address())});
  EXPECT_TRUE(WaitFor([&] {
    return Rows(url_, "SELECT count(*) FROM coordinators").front() == "2";
  })) << b->process->Output();

  // State the standby must find: a job (no agent, so it stays queued).
  auto stub = v1::UserService::NewStub(
      grpc::CreateChannel(a->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::SubmitRequest submit;
  submit.set_spec_yaml("name: before-kill\nstages:\n  - name: s\n    shell: \"true\"\n");
  v1::SubmitResponse submitted;
  ASSERT_TRUE(stub->Submit(&ctx, submit, &submitted).ok());

  const absl::Time killed = absl::Now();
  a->process->Signal(SIGKILL);
  ASSERT_TRUE(WaitForActive(b, absl::Seconds(60))) << b->process->Output();
  std::printf("takeover after SIGKILL of the active: %.2fs\n",
              absl::ToDoubleSeconds(absl::Now() - killed));
  EXPECT_EQ(Rows(url_, "SELECT epoch, address FROM leadership"),
            std::vector<std::string>{absl::StrCat("2|", b->address())});
  metrics = http.Get("/metrics");
  ASSERT_TRUE(metrics);
  for (const char* line : {"\nmusafarm_coordinator_leader 1\n",
                           "\nmusafarm_coordinator_leader_epoch 2\n",
                           "\nmusafarm_coordinator_takeovers_total 1\n"}) {
    EXPECT_TRUE(absl::StrContains(metrics->body, line)) << line << " in " << metrics->body;
  }
  // Since when: the takeover, between the kill and now (whole Unix seconds).
  int64_t since = 0;
  for (absl::string_view line : absl::StrSplit(metrics->body, '\n')) {
    if (absl::ConsumePrefix(&line, "musafarm_coordinator_leader_since_seconds ")) {
      EXPECT_TRUE(absl::SimpleAtoi(line, &since)) << line;
    }
  }
  EXPECT_GE(since, absl::ToUnixSeconds(killed)) << metrics->body;
  EXPECT_LE(since, absl::ToUnixSeconds(absl::Now())) << metrics->body;
  // The dashboard's coordinators view reads the same as `musafarm coordinators`:
  // b active at epoch 2 since then, listed first, a after it.
  auto listed = http.Get("/api/coordinators");
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->status, 200) << listed->body;
  const nlohmann::json list = nlohmann::json::parse(listed->body, nullptr, false);
  ASSERT_TRUE(list.contains("coordinators")) << listed->body;
  ASSERT_EQ(list["coordinators"].size(), 2u) << listed->body;
  EXPECT_EQ(list["coordinators"][0].value("address", ""), b->address()) << listed->body;
  EXPECT_EQ(list["coordinators"][0].value("role", ""), "COORDINATOR_ROLE_ACTIVE") << listed->body;
  EXPECT_EQ(list["coordinators"][0].value("epoch", ""), "2") << listed->body;  // int64: a string
  EXPECT_TRUE(list["coordinators"][0].contains("active_since")) << listed->body;
  EXPECT_EQ(list["coordinators"][1].value("address", ""), a->address()) << listed->body;
  EXPECT_EQ(list.value("store", ""), "postgresql") << listed->body;
  auto b_stub = v1::UserService::NewStub(
      grpc::CreateChannel(b->address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext get_ctx;
  v1::GetJobRequest get;
  get.set_job_id(submitted.job().id());
  v1::Job job;
  grpc::Status got = b_stub->GetJob(&get_ctx, get, &job);
  ASSERT_TRUE(got.ok()) << got.error_message();
  EXPECT_EQ(job.name(), "before-kill");
}

// Issue 20's acceptance line: SIGSTOP the active until the standby takes
// over, SIGCONT it; its next commit is refused by the epoch and nothing it
// tried to write after the takeover exists. The test environment variable
// keeps the woken coordinator from exiting on its lost lock session first (it
// normally would, at its next check), so that the fence alone is what stops
// it here.
TEST_F(LeadershipE2eTest, AFrozenActiveThatWakesAfterTheTakeoverWritesNothing) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
  env.push_back("MUSAFARM_TEST_IGNORE_LOST_LEADERSHIP=1");
  Coordinator* a = Start("a", {"--leader-timeout", "3s"}, env);
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(WaitForActive(a, absl::Seconds(30))) << a->process->Output();
  Coordinator* b = Start("b", {"--leader-timeout", "3s"});
  ASSERT_NE(b, nullptr);
  ASSERT_EQ(ListAgents(b->address()).active, a->address());

  // A connection to the active, open before it freezes.
  auto channel = grpc::CreateChannel(a->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::UserService::NewStub(channel);
  {
    grpc::ClientContext ctx;
    v1::ListAgentsRequest req;
    v1::ListAgentsResponse resp;
    ASSERT_TRUE(stub->ListAgents(&ctx, req, &resp).ok());
  }

  a->process->Signal(SIGSTOP);
  const absl::Time stopped = absl::Now();
  ASSERT_TRUE(WaitForActive(b, absl::Seconds(60))) << b->process->Output();
  std::printf("takeover after SIGSTOP of the active (--leader-timeout 3s): %.2fs\n",
              absl::ToDoubleSeconds(absl::Now() - stopped));

  // A submit to the frozen one waits in its socket; it wakes and commits.
  grpc::Status late;
  std::thread submitter([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(60)));
    v1::SubmitRequest submit;
    submit.set_spec_yaml("name: after-takeover\nstages:\n  - name: s\n    shell: \"true\"\n");
    v1::SubmitResponse resp;
    late = stub->Submit(&ctx, submit, &resp);
  });
  // Whether the request reaches the socket before or after the wake-up, the
  // woken coordinator commits it with its old epoch.
  a->process->Signal(SIGCONT);
  submitter.join();
  EXPECT_FALSE(late.ok());
  const int exit_code = a->process->Wait(absl::Seconds(60));
  EXPECT_NE(exit_code, 0);  // a failed commit stops it
  EXPECT_NE(exit_code, -1) << "still running: " << a->process->Output();
  EXPECT_TRUE(absl::StrContains(a->process->Output(),
                                "deposed: epoch 1 is no longer the leader's (now 2)"))
      << a->process->Output();
  EXPECT_EQ(Rows(url_, "SELECT count(*) FROM jobs WHERE name = 'after-takeover'"),
            std::vector<std::string>{"0"});
  // The new active serves on.
  EXPECT_TRUE(ListAgents(b->address()).status.ok());
}

// Issue 20, item 4: `musafarm coordinators` shows who is active since when.
// Asked of the standby first (and past a dead address), it is answered there,
// not sent on; after the active is SIGKILLed, the new active is listed and
// the killed one is gone once its row is stale (3 x --leader-timeout, 6 s at
// least: coordinator/coordinator_list.h).
TEST_F(LeadershipE2eTest, CoordinatorsListsTheActiveTheStandbyAndTheKilledOneAsGone) {
  Coordinator* a = Start("a", {"--leader-timeout", "2s"});
  ASSERT_NE(a, nullptr);
  ASSERT_TRUE(WaitForActive(a, absl::Seconds(30))) << a->process->Output();
  Coordinator* b = Start("b", {"--leader-timeout", "2s"});
  ASSERT_NE(b, nullptr);
  const std::string log = dir_ + "/cli.log";
  // Port 1: nothing listens there, so the CLI goes on to the standby.
  const std::string targets = absl::StrCat("127.0.0.1:1,", b->address(), ",", a->address());
  const std::vector<std::string> both = {absl::StrCat(a->address(), "=COORDINATOR_ROLE_ACTIVE@1"),
                                         absl::StrCat(b->address(), "=COORDINATOR_ROLE_STANDBY@0")};
  std::vector<std::string> listed;
  std::string answered_by;
  // The standby's row is written by its first poll, just after it serves.
  EXPECT_TRUE(WaitFor([&] {
    listed = ListedCoordinators(targets, log, &answered_by);
    return listed == both;
  })) << ::testing::PrintToString(listed);
  // The standby answered (its id is HOST/PID/START_US).
  EXPECT_TRUE(absl::StrContains(answered_by, absl::StrCat("/", b->process->pid(), "/")))
      << answered_by;

  // The table.
  std::string table;
  ASSERT_EQ(Musafarm(targets, {"coordinators"}, log, &table), 0) << table;
  std::vector<std::string> lines = absl::StrSplit(table, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << table;
  EXPECT_THAT(lines[0], ::testing::StartsWith("ADDRESS"));
  EXPECT_THAT(lines[1], ::testing::StartsWith(a->address()));
  EXPECT_THAT(lines[1], ::testing::HasSubstr(" active "));
  EXPECT_THAT(lines[2], ::testing::StartsWith(b->address()));
  EXPECT_THAT(lines[2], ::testing::HasSubstr(" standby "));

  a->process->Signal(SIGKILL);
  ASSERT_TRUE(WaitForActive(b, absl::Seconds(60))) << b->process->Output();
  const std::vector<std::string> after = {absl::StrCat(b->address(), "=COORDINATOR_ROLE_ACTIVE@2"),
                                          absl::StrCat(a->address(), "=COORDINATOR_ROLE_GONE@0")};
  EXPECT_TRUE(WaitFor([&] {
    listed = ListedCoordinators(targets, log);
    return listed == after;
  })) << ::testing::PrintToString(listed);

  // Bad input gets the CLI's usual message.
  std::string bad;
  EXPECT_EQ(Musafarm(targets, {"coordinators", "--bogus"}, log, &bad), 2);
  EXPECT_THAT(bad, ::testing::HasSubstr("unknown option --bogus"));
}

}  // namespace
}  // namespace musafarm::e2e
