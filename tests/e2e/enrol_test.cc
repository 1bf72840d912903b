// End-to-end tests of enrolment, renewal and revocation (issue 10, point 2):
// the real coordinator (TLS on, the farm CA's key in its data dir), agents
// enrolled with `musafarm-agent enroll` and join tokens from
// `musafarm-coordinator join-token create`, and the real CLI verifying the
// coordinator's certificate.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/pki.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "musafarm/v1/agent_service.grpc.pb.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

using ::absl::StrContains;

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The JSON object in a CLI's output (its log holds stderr too).
std::string JsonOf(const std::string& out) {
  const size_t at = out.find('{');
  return at == std::string::npos ? "" : out.substr(at);
}

struct Token {
  std::string text;  // mfj1.<id>.<secret>
  std::string pin;   // sha256:...
};

// A TLS farm in a Farm's directory, made as an operator makes one: `ca init`
// (the farm CA with its key, so the coordinator enrols, and a server
// certificate whose chain carries the CA, as a pinned first contact needs).
class EnrolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string out;
    ASSERT_EQ(Run({MF_COORDINATOR_BIN, "ca", "init", "--data-dir", data_dir()}, &out), 0) << out;
  }

  std::string data_dir() const { return farm_.dir() + "/coordinator"; }
  std::string ca_file() const { return data_dir() + "/pki/ca.crt"; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  std::string work_dir(const std::string& name) const { return farm_.dir() + "/agent-" + name; }

  // Starts (or restarts, on the same port) the coordinator with TLS.
  void StartCoordinator(const std::vector<std::string>& extra = {}) {
    const std::string port_file = farm_.dir() + "/coordinator.port";
    std::filesystem::remove(port_file);
    std::vector<std::string> argv = {MF_COORDINATOR_BIN, "--listen",
                                     absl::StrCat("127.0.0.1:", port_), "--port-file", port_file,
                                     "--data-dir", data_dir()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = Process::Start(argv, absl::StrCat(farm_.dir(), "/coordinator-", ++starts_, ".log"));
    ASSERT_TRUE(p.ok()) << p.status();
    coordinator_ = *std::move(p);
    ASSERT_TRUE(WaitFor([&] {
      return std::filesystem::exists(port_file) || !coordinator_->Running();
    })) << coordinator_->Output();
    ASSERT_TRUE(coordinator_->Running()) << coordinator_->Output();
    port_ = std::stoi(ReadFile(port_file));
    // User calls need an API token (issue 11): the CLI runs as an admin.
    if (token_.empty()) {
      std::string out;
      ASSERT_EQ(Run({MF_COORDINATOR_BIN, "token", "create", "enrol-admin", "--role", "admin",
                     "--data-dir", data_dir()},
                    &out),
                0)
          << out;
      for (absl::string_view line : absl::StrSplit(out, '\n')) {
        if (absl::StartsWith(line, "mfu1.")) token_ = std::string(line);
      }
      ASSERT_FALSE(token_.empty()) << out;
    }
  }

  // Runs a binary to its exit; its exit code, and its output in `*out`.
  // `env`: its environment, if not the test's.
  int Run(const std::vector<std::string>& argv, std::string* out,
          std::vector<std::string> env = {}) {
    auto p = Process::Start(argv, absl::StrCat(farm_.dir(), "/run-", ++runs_, ".log"),
                            std::move(env));
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return -1;
    const int code = (*p)->Wait(absl::Seconds(60));
    *out = (*p)->Output();
    return code;
  }

  Token CreateToken(int uses, const std::string& ttl = "1h") {
    std::string out;
    EXPECT_EQ(Run({MF_COORDINATOR_BIN, "join-token", "create", "--data-dir", data_dir(), "--uses",
                   std::to_string(uses), "--ttl", ttl, "--coordinator", address()},
                  &out),
              0)
        << out;
    Token t;
    for (absl::string_view line : absl::StrSplit(out, '\n')) {
      if (absl::StartsWith(line, "mfj1.")) t.text = std::string(line);
      if (const size_t at = line.find("--ca-pin sha256:"); at != absl::string_view::npos) {
        t.pin = std::string(line.substr(at + 9, 7 + 64));
      }
    }
    EXPECT_FALSE(t.text.empty()) << out;
    EXPECT_FALSE(t.pin.empty()) << out;
    // The printed command is the one to run.
    EXPECT_TRUE(StrContains(out, absl::StrCat("musafarm-agent enroll --coordinator ", address(),
                                              " --token ", t.text, " --ca-pin ", t.pin)))
        << out;
    return t;
  }

  int Enroll(const std::string& name, const Token& token, std::string* out) {
    return Run({MF_AGENT_BIN, "enroll", "--coordinator", address(), "--token", token.text,
                "--ca-pin", token.pin, "--name", name, "--work-dir", work_dir(name)},
               out);
  }

  Process* StartAgent(const std::string& name) {
    auto p = Process::Start({MF_AGENT_BIN, "--coordinator", address(), "--name", name,
                             "--work-dir", work_dir(name), "--slots", "1", "--kill-grace", "1",
                             "--no-gpu-detect"},
                            farm_.dir() + "/agent-" + name + ".log");
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return nullptr;
    agents_.push_back(*std::move(p));
    return agents_.back().get();
  }

  // `musafarm` over TLS, verifying the coordinator against the farm CA.
  CliResult Cli(const std::vector<std::string>& args) {
    // --ca=FILE: the CLI reads a pipeline file before parsing, and that scan
    // does not know --ca takes a value (tls part: cli/script_options.cc).
    std::vector<std::string> argv = {MF_CLI_BIN, "--coordinator", address(), "--ca=" + ca_file()};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (!absl::StartsWith(*e, "MUSAFARM_TOKEN=")) env.emplace_back(*e);
    }
    env.push_back("MUSAFARM_TOKEN=" + token_);
    CliResult r;
    std::string out;
    r.exit_code = Run(argv, &out, std::move(env));
    r.out = out;
    return r;
  }

  std::vector<v1::Agent> Agents() {
    CliResult r = Cli({"agents", "--output", "json"});
    v1::ListAgentsResponse resp;
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = true;
    if (r.exit_code != 0 ||
        !google::protobuf::util::JsonStringToMessage(JsonOf(r.out), &resp, opts).ok()) {
      return {};
    }
    return {resp.agents().begin(), resp.agents().end()};
  }
  bool Connected(const std::string& name) {
    for (const v1::Agent& a : Agents()) {
      if (a.name() == name) return a.state() == v1::AGENT_STATE_CONNECTED;
    }
    return false;
  }

  std::string Submit(const std::string& yaml) {
    const std::string file = absl::StrCat(farm_.dir(), "/pipeline-", ++runs_, ".yaml");
    WriteFile(file, yaml);
    CliResult r = Cli({"submit", file, "--output", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.out;
    v1::Job job;
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = true;
    const std::string json = JsonOf(r.out);
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(json, &job, opts).ok()) << r.out;
    return job.id();
  }
  absl::StatusOr<v1::Job> Job(const std::string& id) {
    CliResult r = Cli({"status", id, "--output", "json"});
    v1::Job job;
    google::protobuf::util::JsonParseOptions opts;
    opts.ignore_unknown_fields = true;
    if (!google::protobuf::util::JsonStringToMessage(JsonOf(r.out), &job, opts).ok()) {
      return absl::UnavailableError(r.out);
    }
    return job;
  }
  v1::TaskState TaskState(const std::string& job) {
    absl::StatusOr<v1::Job> j = Job(job);
    return j.ok() && j->tasks_size() > 0 ? j->tasks(0).state() : v1::TASK_STATE_UNSPECIFIED;
  }

  Farm farm_;  // the directory, and its cleanup
  std::string token_;  // the CLI's API token, made at the first start
  int port_ = 0;
  int starts_ = 0;
  int runs_ = 0;
  std::unique_ptr<Process> coordinator_;
  std::vector<std::unique_ptr<Process>> agents_;
};

// A join token works once (a second enrolment with it fails clearly), an
// N-use token N times, and no token after its expiry; a wrong pin is refused
// before anything is sent.
TEST_F(EnrolTest, JoinTokenWorksForItsUsesAndNotAfterExpiry) {
  StartCoordinator();
  std::string out;
  const Token once = CreateToken(1);
  ASSERT_EQ(Enroll("a1", once, &out), 0) << out;
  EXPECT_TRUE(StrContains(out, "enrolled as 'a1'")) << out;
  struct stat st {};
  ASSERT_EQ(::stat((work_dir("a1") + "/pki/agent.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600);
  absl::StatusOr<pki::CertInfo> cert =
      pki::ParseCertificate(ReadFile(work_dir("a1") + "/pki/agent.crt"));
  ASSERT_TRUE(cert.ok()) << cert.status();
  EXPECT_EQ(cert->common_name, "a1");
  EXPECT_EQ(ReadFile(work_dir("a1") + "/pki/ca.crt"), ReadFile(ca_file()));

  EXPECT_EQ(Enroll("a2", once, &out), 1) << out;
  EXPECT_TRUE(StrContains(out, "is used up; ask the operator for a new one")) << out;
  EXPECT_FALSE(std::filesystem::exists(work_dir("a2") + "/pki/agent.crt"));

  const Token thrice = CreateToken(3);
  for (const char* name : {"b1", "b2", "b3"}) {
    EXPECT_EQ(Enroll(name, thrice, &out), 0) << name << ": " << out;
  }
  EXPECT_EQ(Enroll("b4", thrice, &out), 1) << out;
  EXPECT_TRUE(StrContains(out, "is used up")) << out;

  const Token expired = CreateToken(5, "1ms");  // expired by the time it is used
  EXPECT_EQ(Enroll("c1", expired, &out), 1) << out;
  EXPECT_TRUE(StrContains(out, "expired at")) << out;

  Token wrong_pin = CreateToken(1);
  wrong_pin.pin = "sha256:" + std::string(64, '0');
  EXPECT_EQ(Enroll("d1", wrong_pin, &out), 1) << out;
  EXPECT_TRUE(StrContains(out, "CA pin mismatch")) << out;

  std::string list;
  ASSERT_EQ(Run({MF_COORDINATOR_BIN, "join-token", "list", "--data-dir", data_dir()}, &list), 0);
  EXPECT_EQ(Count(list, "used up"), 2) << list;
  EXPECT_EQ(Count(list, "expired"), 1) << list;
  EXPECT_FALSE(StrContains(list, once.text.substr(14))) << "a secret was listed: " << list;
  EXPECT_FALSE(StrContains(coordinator_->Output(), once.text.substr(14)))
      << "a secret was logged";
}

// An enrolled agent connects over TLS as the name in its certificate. With
// 12 s certificates it renews at ~8 s on a separate call while
// its attempt runs: the attempt started before the renewal succeeds on the
// same stream. Once the first certificate has expired, a restarted
// coordinator sees the agent come back with a renewed one.
TEST_F(EnrolTest, CertificateRenewsWithoutDroppingTheRunningAttempt) {
  StartCoordinator({"--cert-lifetime", "12"});
  std::string out;
  ASSERT_EQ(Enroll("r1", CreateToken(1), &out), 0) << out;
  absl::StatusOr<pki::CertInfo> first =
      pki::ParseCertificate(ReadFile(work_dir("r1") + "/pki/agent.crt"));
  ASSERT_TRUE(first.ok());
  Process* agent = StartAgent("r1");
  ASSERT_NE(agent, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Connected("r1"); })) << agent->Output();

  const std::string gate = farm_.dir() + "/gate";
  // An exec stage: with TLS and no --agent-policy, shell stages need trust.
  const std::string job =
      Submit(absl::StrCat("stages:\n  - name: waiter\n    exec: [\"sh\", \"-c\", \"while [ ! -e ",
                          gate, " ]; do sleep 0.05; done\"]\n"));
  ASSERT_TRUE(WaitFor([&] { return TaskState(job) == v1::TASK_STATE_RUNNING; }));
  ASSERT_TRUE(WaitFor([&] { return StrContains(agent->Output(), "renewed the certificate of 'r1'"); }))
      << agent->Output();
  absl::StatusOr<pki::CertInfo> renewed =
      pki::ParseCertificate(ReadFile(work_dir("r1") + "/pki/agent.crt"));
  ASSERT_TRUE(renewed.ok());
  EXPECT_NE(renewed->serial_hex, first->serial_hex);
  EXPECT_GT(renewed->not_after, first->not_after);

  WriteFile(gate, "");
  ASSERT_TRUE(WaitFor([&] { return TaskState(job) == v1::TASK_STATE_SUCCEEDED; }));
  absl::StatusOr<v1::Job> done = Job(job);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->tasks(0).attempt_id(), 1u) << "the attempt was not the first";
  EXPECT_EQ(Count(agent->Output(), "registered with"), 1) << "the stream was dropped\n"
                                                          << agent->Output();

  // The first certificate expires; the coordinator restarts; the agent comes
  // back with what it renewed to.
  ASSERT_TRUE(WaitFor([&] { return absl::Now() > first->not_after + absl::Seconds(1); }));
  coordinator_->Signal(SIGTERM);
  ASSERT_GE(coordinator_->Wait(absl::Seconds(20)), 0);
  StartCoordinator({"--cert-lifetime", "12"});
  ASSERT_TRUE(WaitFor([&] { return Count(agent->Output(), "registered with") >= 2; }))
      << agent->Output();
  EXPECT_TRUE(WaitFor([&] { return Connected("r1"); }));
  EXPECT_FALSE(StrContains(coordinator_->Output(), "refus")) << coordinator_->Output();
}

// `musafarm agents revoke`: the live stream ends with UNAUTHENTICATED, a
// reconnect is refused with a clear status, a renewal is refused, and the
// revoked agent gets no assignment (another agent runs the work).
TEST_F(EnrolTest, RevokedAgentLosesItsStreamAndIsRefusedEverywhere) {
  StartCoordinator();
  std::string out;
  const Token token = CreateToken(2);
  ASSERT_EQ(Enroll("v1", token, &out), 0) << out;
  ASSERT_EQ(Enroll("w1", token, &out), 0) << out;
  Process* revoked = StartAgent("v1");
  ASSERT_NE(revoked, nullptr);
  ASSERT_TRUE(WaitFor([&] { return Connected("v1"); })) << revoked->Output();

  CliResult r = Cli({"agents", "revoke", "v1"});
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_TRUE(StrContains(r.out, "agent v1 is revoked")) << r.out;
  // The live stream ends with the reason; every reconnect is refused.
  ASSERT_TRUE(WaitFor([&] {
    return StrContains(revoked->Output(), "ended: agent 'v1' was revoked at");
  })) << revoked->Output();
  ASSERT_TRUE(WaitFor([&] {
    return StrContains(coordinator_->Output(), "refusing agent 'v1' from ipv4:127.0.0.1:");
  })) << coordinator_->Output();
  bool listed_revoked = false;
  for (const v1::Agent& a : Agents()) {
    if (a.name() == "v1") listed_revoked = a.revoked() && a.state() != v1::AGENT_STATE_CONNECTED;
  }
  EXPECT_TRUE(listed_revoked);

  // Renewal with its (still unexpired) certificate is refused.
  grpc::SslCredentialsOptions creds;
  creds.pem_root_certs = ReadFile(ca_file());
  creds.pem_cert_chain = ReadFile(work_dir("v1") + "/pki/agent.crt");
  creds.pem_private_key = ReadFile(work_dir("v1") + "/pki/agent.key");
  auto stub = v1::AgentService::NewStub(grpc::CreateChannel(address(), grpc::SslCredentials(creds)));
  absl::StatusOr<std::string> key = pki::GeneratePrivateKey();
  ASSERT_TRUE(key.ok());
  v1::RenewCertificateRequest renew;
  renew.set_csr_pem(*pki::MakeCsr(*key, "v1"));
  v1::RenewCertificateResponse renewed;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Status s = stub->RenewCertificate(&ctx, renew, &renewed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.error_message();
  EXPECT_TRUE(StrContains(s.error_message(), "agent 'v1' was revoked")) << s.error_message();

  // No assignment: the work waits for, and goes to, the other agent.
  const std::string job = Submit("stages:\n  - name: t\n    exec: [\"true\"]\n");
  Process* other = StartAgent("w1");
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(WaitFor([&] { return TaskState(job) == v1::TASK_STATE_SUCCEEDED; }))
      << other->Output();
  absl::StatusOr<v1::Job> done = Job(job);
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->tasks(0).agent(), "w1");
  EXPECT_FALSE(StrContains(revoked->Output(), "starting")) << revoked->Output();
}

}  // namespace
}  // namespace musafarm::e2e
