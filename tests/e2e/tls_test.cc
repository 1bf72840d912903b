// End-to-end tests of the coordinator's port security (issue 10, point 1, and
// the acceptance points about handshakes and names): TLS by default,
// plaintext only with --insecure on each binary. The real coordinator, agents
// and CLI on loopback.
#include <stdlib.h>

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
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "musafarm/v1/agent_service.grpc.pb.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/harness.h"
#include "tests/faults/tcp_proxy.h"

namespace musafarm::e2e {
namespace {

using ::absl::StrContains;

// Without --insecure and without TLS material, each binary exits 2 naming
// the file it lacks and how to make it; the coordinator creates nothing.
TEST(TlsFlagsTest, WithoutInsecureOrTlsMaterialEachBinaryExitsTwoSayingWhatToDo) {
  Farm farm;
  const std::string data = farm.dir() + "/coordinator";
  std::string out;
  EXPECT_EQ(RunToExit({MF_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--data-dir", data},
                      farm.dir() + "/coordinator.log", &out),
            2)
      << out;
  EXPECT_TRUE(StrContains(out, absl::StrCat("no TLS certificate at ", data, "/pki/server.crt: ",
                                            "run `musafarm-coordinator ca init --data-dir ", data,
                                            "`, or pass --insecure for plaintext")))
      << out;
  EXPECT_FALSE(std::filesystem::exists(data));

  const std::string work = farm.dir() + "/agent-a";
  EXPECT_EQ(RunToExit({MF_AGENT_BIN, "--coordinator", "127.0.0.1:1", "--name", "a", "--work-dir",
                       work, "--no-gpu-detect"},
                      farm.dir() + "/agent.log", &out),
            2)
      << out;
  EXPECT_TRUE(StrContains(out, absl::StrCat("no agent certificate at ", work, "/pki/agent.crt")))
      << out;
  EXPECT_TRUE(StrContains(out, "or pass --insecure for plaintext")) << out;

  // The CLI's default CA is ~/.config/musafarm/ca.crt: a HOME without one.
  const std::string home = farm.dir() + "/home";
  std::filesystem::create_directories(home);
  ASSERT_EQ(::setenv("HOME", home.c_str(), 1), 0);
  ::unsetenv("MUSAFARM_CA");
  ::unsetenv("MUSAFARM_CONFIG");
  EXPECT_EQ(RunToExit({MF_CLI_BIN, "--coordinator", "127.0.0.1:1", "jobs"}, farm.dir() + "/cli.log",
                      &out),
            2)
      << out;
  EXPECT_TRUE(StrContains(
      out, absl::StrCat("musafarm: no CA certificate at ", home, "/.config/musafarm/ca.crt")))
      << out;
  EXPECT_TRUE(StrContains(out, "pass --insecure for a coordinator run with --insecure")) << out;
}

// --insecure: the coordinator says at start that agents are not
// authenticated, and so does `musafarm agents`.
TEST(TlsFlagsTest, AnInsecureCoordinatorWarnsAtStartAndInTheAgentList) {
  Farm farm;  // --insecure by default
  farm.StartCoordinator();
  farm.StartAgent("a", {}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; })) << "agent did not register";
  EXPECT_TRUE(StrContains(farm.coordinator()->Output(),
                          " W [coordinator] listening on port " + std::to_string(farm.port()) +
                              " in PLAINTEXT (--insecure): agents are not authenticated"))
      << farm.coordinator()->Output();
  CliResult table = farm.Cli({"agents"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_TRUE(StrContains(table.out,
                          "--insecure: agent names are as the agents declared them, "
                          "not authenticated"))
      << table.out;
  CliResult json = farm.Cli({"agents", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json parsed = nlohmann::json::parse(json.out, nullptr, false);
  EXPECT_EQ(parsed["insecure"], true) << json.out;
  EXPECT_EQ(parsed["agents"][0]["authentication"], "none") << json.out;
}

// ---- TLS on (issue 10 acceptance): the real binaries with certificates.

FarmOptions Tls(std::vector<std::string> ca_init_flags = {}) {
  FarmOptions o;
  o.tls = true;
  o.ca_init_flags = std::move(ca_init_flags);
  return o;
}

// A stage that runs until the test creates `go`, then prints and exits 3: the
// honest agent's result, which nobody else's may replace. An exec stage: with
// TLS and no --agent-policy, shell stages need trust.
std::string GatedPipeline(Farm& farm, const std::string& go) {
  return farm.WritePipeline(
      "gated.yaml", absl::StrCat("stages:\n  - name: s\n    exec: [\"sh\", \"-c\", \"while [ ! -e ", go,
                                 " ]; do sleep 0.05; done; echo honest; exit 3\"]\n"));
}

// What a hand-written AgentService client got: every message, and the end.
struct RawSession {
  grpc::Status status;
  std::vector<v1::CoordinatorMessage> received;
};

// The attack of issue 10, as a client that speaks the protocol itself:
// registers as `name` holding `task`'s attempt 1, asks for work, and reports
// a forged success for that attempt.
RawSession RawAgent(const std::string& address, std::shared_ptr<grpc::ChannelCredentials> creds,
                    const std::string& name, const std::string& task) {
  auto stub = v1::AgentService::NewStub(grpc::CreateChannel(address, creds));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto stream = stub->Connect(&ctx);
  v1::AgentMessage reg;
  reg.mutable_register_()->set_name(name);
  reg.mutable_register_()->set_slots(12);
  reg.mutable_register_()->add_labels("os=linux");
  reg.mutable_register_()->set_instance_secret("attacker-secret-0123456789");
  reg.mutable_register_()->mutable_capabilities()->add_executors("exec");
  v1::HeldAttempt* held = reg.mutable_register_()->add_held();
  held->set_task_id(task);
  held->set_attempt_id(1);
  v1::AgentMessage forged;
  forged.mutable_result()->set_task_id(task);
  forged.mutable_result()->set_attempt_id(1);
  forged.mutable_result()->set_exit_code(0);
  forged.mutable_result()->set_outcome(v1::ATTEMPT_OUTCOME_SUCCEEDED);
  RawSession s;
  // No WritesDone: a half-close would end the stream (status OK) before the
  // coordinator's answer to the register could. The stream ends when the
  // coordinator ends it, or at the deadline if the attack were let in.
  if (stream->Write(reg)) stream->Write(forged);
  v1::CoordinatorMessage in;
  while (stream->Read(&in)) s.received.push_back(in);
  s.status = stream->Finish();
  return s;
}

std::shared_ptr<grpc::ChannelCredentials> TlsCreds(const std::string& ca_pem,
                                                   const std::string& cert_pem = "",
                                                   const std::string& key_pem = "") {
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = ca_pem;
  o.pem_cert_chain = cert_pem;
  o.pem_private_key = key_pem;
  return grpc::SslCredentials(o);
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

class TlsFarmTest : public ::testing::Test {
 protected:
  // Submits the gated pipeline and waits until agent `a` runs it.
  std::string SubmitGatedAndWaitRunning() {
    const std::string id = farm_.Submit(GatedPipeline(farm_, go_));
    EXPECT_TRUE(farm_.WaitForTaskState(id, "s", v1::TASK_STATE_RUNNING)) << "task did not start";
    return id;
  }
  // Lets the gated task finish; expects the honest agent's result: attempt 1
  // on `a`, exit 3, its log.
  void ExpectHonestResult(const std::string& id) {
    WriteFile(go_, "");
    ASSERT_TRUE(farm_.WaitForJobEnd(id));
    absl::StatusOr<v1::Job> job = farm_.Job(id);
    ASSERT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job->state(), v1::JOB_STATE_FAILED);
    const v1::Task* t = FindTask(*job, "s");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->agent(), "a");
    EXPECT_EQ(t->attempt_id(), 1u);
    EXPECT_EQ(t->exit_code(), 3);
    EXPECT_EQ(farm_.Cli({"logs", id + "/s"}).out, "honest\n");
  }
  // Waits until agent instance `instance` has been refused `times` times
  // (it retried with its backoff meanwhile), with `reason` in its log.
  bool WaitRefused(const std::string& instance, const std::string& reason, int times = 2) {
    return WaitFor([&] {
      const std::string log = ReadFile(farm_.dir() + "/agent-" + instance + ".log");
      return Count(log, "the coordinator refused this agent: " + reason) >= times;
    });
  }

  Farm farm_{Tls()};
  const std::string go_ = farm_.dir() + "/go";
};

TEST_F(TlsFarmTest, AnAgentWithTheFarmsCertificateRegistersUnderItsNameAndRuns) {
  farm_.StartCoordinator();
  EXPECT_TRUE(StrContains(farm_.coordinator()->Output(), "with TLS")) << farm_.coordinator()->Output();
  farm_.StartAgent("a", {}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm_.Agents().size() == 1; })) << "agent did not register";
  const v1::Agent agent = farm_.Agents()[0];
  EXPECT_EQ(agent.name(), "a");
  EXPECT_EQ(agent.authentication(), "certificate");
  EXPECT_EQ(agent.certificate_fingerprint(),
            pki::ParseCertificate(ReadFile(farm_.agent_dir("a") + "/pki/agent.crt"))->fingerprint);
  CliResult table = farm_.Cli({"agents"});
  EXPECT_EQ(table.exit_code, 0) << table.err;
  EXPECT_FALSE(StrContains(table.out, "not authenticated")) << table.out;
  ExpectHonestResult(SubmitGatedAndWaitRunning());

  // `ca init` made the CA once and will not replace it.
  const std::string ca = ReadFile(farm_.ca_file());
  std::string out;
  EXPECT_EQ(RunToExit({MF_COORDINATOR_BIN, "ca", "init", "--data-dir", farm_.data_dir()},
                      farm_.dir() + "/ca-init-again.log", &out),
            2)
      << out;
  EXPECT_TRUE(StrContains(out, "a CA already exists at " + farm_.ca_file())) << out;
  EXPECT_EQ(ReadFile(farm_.ca_file()), ca);
}

// No certificate: the stream ends at once, UNAUTHENTICATED, saying why.
TEST_F(TlsFarmTest, AClientWithoutACertificateIsRefusedAndGetsNothing) {
  farm_.StartCoordinator();
  RawSession s = RawAgent(farm_.address(), TlsCreds(ReadFile(farm_.ca_file())), "a", "1/s");
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << s.status.error_message();
  EXPECT_TRUE(StrContains(s.status.error_message(), "no client certificate"))
      << s.status.error_message();
  EXPECT_TRUE(s.received.empty());
  EXPECT_TRUE(StrContains(farm_.coordinator()->Output(), " W [agent_stream] agent stream from ipv4:127.0.0.1:"))
      << farm_.coordinator()->Output();
  EXPECT_TRUE(farm_.Agents().empty());
}

TEST_F(TlsFarmTest, ACertificateFromAnotherCaIsRefusedAndGetsNoAssignment) {
  farm_.StartCoordinator();
  const std::string id = farm_.Submit(GatedPipeline(farm_, go_));
  absl::StatusOr<pki::Ca> other =
      pki::MakeCa("other-ca", absl::Now() - absl::Hours(1), absl::Now() + absl::Hours(24));
  ASSERT_TRUE(other.ok()) << other.status();
  AgentCertOptions o;
  o.ca = &*other;
  farm_.GiveAgentCertificate("a", "a", o);
  farm_.StartAgent("a", {}, 1);
  ASSERT_TRUE(WaitRefused("a", "certificate for 'a' is not signed by this farm's CA"))
      << ReadFile(farm_.dir() + "/agent-a.log");
  EXPECT_TRUE(farm_.Agents().empty());
  absl::StatusOr<v1::Job> job = farm_.Job(id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(FindTask(*job, "s")->state(), v1::TASK_STATE_QUEUED);
}

TEST_F(TlsFarmTest, AnExpiredCertificateIsRefusedAndGetsNoAssignment) {
  farm_.StartCoordinator();
  const std::string id = farm_.Submit(GatedPipeline(farm_, go_));
  AgentCertOptions o;
  o.valid_from = -absl::Hours(48);
  o.valid_for = -absl::Hours(24);
  farm_.GiveAgentCertificate("a", "a", o);
  farm_.StartAgent("a", {}, 1);
  ASSERT_TRUE(WaitRefused("a", "certificate for 'a' expired at "))
      << ReadFile(farm_.dir() + "/agent-a.log");
  EXPECT_TRUE(farm_.Agents().empty());
  absl::StatusOr<v1::Job> job = farm_.Job(id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(FindTask(*job, "s")->state(), v1::TASK_STATE_QUEUED);
}

// A certificate naming `a` cannot register as `b`: the agent will not start
// so, and a client that tries it by hand is refused.
TEST_F(TlsFarmTest, ACertificateNamingACannotRegisterAsB) {
  farm_.StartCoordinator();
  farm_.GiveAgentCertificate("b", "a");
  Process* b = farm_.StartAgent("b", {}, 1);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->Wait(absl::Seconds(30)), 2);
  EXPECT_TRUE(StrContains(b->Output(), "--name b does not match the name in the agent "
                                       "certificate, 'a'"))
      << b->Output();

  const std::string pki_dir = farm_.agent_dir("b") + "/pki";
  RawSession s = RawAgent(farm_.address(),
                          TlsCreds(ReadFile(pki_dir + "/ca.crt"), ReadFile(pki_dir + "/agent.crt"),
                                   ReadFile(pki_dir + "/agent.key")),
                          "b", "1/s");
  EXPECT_EQ(s.status.error_code(), grpc::StatusCode::PERMISSION_DENIED)
      << s.status.error_message();
  EXPECT_EQ(s.status.error_message(), "certificate names 'a'; cannot register as 'b'");
  EXPECT_TRUE(s.received.empty());
  EXPECT_TRUE(StrContains(farm_.coordinator()->Output(),
                          " W [core] refusing agent 'b' from ipv4:127.0.0.1:"))
      << farm_.coordinator()->Output();
  EXPECT_TRUE(farm_.Agents().empty());
}

// The same certificate in a second work dir: another instance, refused while
// the first is connected; the first keeps its attempt.
TEST_F(TlsFarmTest, ASecondInstanceOfAIsRefusedWhileTheFirstKeepsItsAttempt) {
  farm_.StartCoordinator();
  farm_.StartAgent("a", {}, 1);
  const std::string id = SubmitGatedAndWaitRunning();
  std::filesystem::create_directories(farm_.agent_dir("a2"));
  std::filesystem::copy(farm_.agent_dir("a") + "/pki", farm_.agent_dir("a2") + "/pki");
  farm_.StartAgentInstance("a2", "a", {}, 1);
  ASSERT_TRUE(WaitRefused("a2", "agent name a is held by another instance"))
      << ReadFile(farm_.dir() + "/agent-a2.log");
  ExpectHonestResult(id);
}

// A network cut between the agent and the coordinator: the agent reconnects
// (a new TLS handshake, the same identity) and resumes its attempt.
TEST_F(TlsFarmTest, TheAgentReconnectingAfterANetworkCutResumesItsAttempt) {
  farm_.StartCoordinator();
  absl::StatusOr<std::unique_ptr<faults::TcpProxy>> proxy = faults::TcpProxy::Start(farm_.port());
  ASSERT_TRUE(proxy.ok()) << proxy.status();
  farm_.StartAgentVia((*proxy)->address(), "a", {}, 1);
  const std::string id = SubmitGatedAndWaitRunning();
  (*proxy)->Sever();
  ASSERT_TRUE(WaitFor([&] {
    return Count(ReadFile(farm_.dir() + "/agent-a.log"), "registered with") >= 2;
  })) << ReadFile(farm_.dir() + "/agent-a.log");
  ExpectHonestResult(id);
}

// The CLI verifies the coordinator: another farm's CA, and a certificate that
// does not name the address dialled, are refused with exit 1 and what to check.
TEST_F(TlsFarmTest, TheCliRefusesACoordinatorSignedByAnotherCa) {
  farm_.StartCoordinator();
  absl::StatusOr<pki::Ca> other =
      pki::MakeCa("other-ca", absl::Now() - absl::Hours(1), absl::Now() + absl::Hours(24));
  ASSERT_TRUE(other.ok()) << other.status();
  const std::string other_ca = farm_.dir() + "/other-ca.crt";
  WriteFile(other_ca, other->cert_pem);
  std::string out;
  EXPECT_EQ(RunToExit({MF_CLI_BIN, "--coordinator", farm_.address(), "--ca", other_ca, "jobs"},
                      farm_.dir() + "/cli-other-ca.log", &out),
            1)
      << out;
  EXPECT_TRUE(StrContains(out, "musafarm: cannot verify the coordinator's certificate at " +
                                   farm_.address()))
      << out;
  // Plaintext against the TLS port gets nothing either.
  EXPECT_NE(RunToExit({MF_CLI_BIN, "--coordinator", farm_.address(), "--insecure", "jobs"},
                      farm_.dir() + "/cli-plain.log", &out),
            0)
      << out;
}

TEST(TlsFarmNameTest, TheCliRefusesACoordinatorWhoseCertificateDoesNotNameTheAddress) {
  Farm farm(Tls({"--san", "farm.example"}));
  farm.StartCoordinator();
  CliResult r = farm.Cli({"jobs"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_TRUE(StrContains(r.err, "musafarm: cannot verify the coordinator's certificate at " +
                                     farm.address()))
      << r.err;
}

// The raw-client attack of issue 10: a client that speaks the protocol,
// in plaintext and over TLS without a certificate, registers under the
// running agent's name claiming its attempt, asks for work and forges a
// success. It fails at the handshake or the first message, receives
// nothing, and the task's result is the honest agent's.
TEST_F(TlsFarmTest, TheRawClientAttackFailsAndTheJobKeepsTheHonestResult) {
  farm_.StartCoordinator();
  farm_.StartAgent("a", {}, 1);
  const std::string id = SubmitGatedAndWaitRunning();
  const std::string task = id + "/s";
  RawSession plain = RawAgent(farm_.address(), grpc::InsecureChannelCredentials(), "a", task);
  EXPECT_EQ(plain.status.error_code(), grpc::StatusCode::UNAVAILABLE)
      << plain.status.error_message();
  EXPECT_TRUE(plain.received.empty());
  RawSession nocert = RawAgent(farm_.address(), TlsCreds(ReadFile(farm_.ca_file())), "a", task);
  EXPECT_EQ(nocert.status.error_code(), grpc::StatusCode::UNAUTHENTICATED)
      << nocert.status.error_message();
  EXPECT_TRUE(nocert.received.empty());
  RawSession evil = RawAgent(farm_.address(), TlsCreds(ReadFile(farm_.ca_file())), "evil-x", task);
  EXPECT_EQ(evil.status.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_TRUE(evil.received.empty());
  ASSERT_EQ(farm_.Agents().size(), 1u);
  EXPECT_EQ(farm_.Agents()[0].name(), "a");
  ExpectHonestResult(id);
}

// Certificates from the operator's own CA (issue 10, point 2): the coordinator
// serves its own certificate, verifies agents against that CA's bundle, and,
// holding no CA key, refuses to enrol with a message that says why.
TEST(TlsOwnCaTest, CertificatesFromTheOperatorsOwnCaWorkAndEnrolmentSaysWhyNot) {
  Farm farm(Tls());
  const absl::Time now = absl::Now();
  absl::StatusOr<pki::Ca> corp = pki::MakeCa("corp root", now - absl::Hours(1), now + absl::Hours(24));
  ASSERT_TRUE(corp.ok()) << corp.status();
  absl::StatusOr<std::string> key = pki::GeneratePrivateKey();
  ASSERT_TRUE(key.ok());
  pki::IssueOptions server;
  server.common_name = "farm.corp";
  server.ip_addresses = {"127.0.0.1"};
  server.server = true;
  server.not_before = now - absl::Hours(1);
  server.not_after = now + absl::Hours(24);
  absl::StatusOr<std::string> cert = pki::SignCsr(*corp, *pki::MakeCsr(*key, "farm.corp"), server);
  ASSERT_TRUE(cert.ok()) << cert.status();
  // The operator's layout: no ca.key, so the harness runs no `ca init`.
  const std::string pki_dir = farm.data_dir() + "/pki";
  std::filesystem::create_directories(pki_dir);
  WriteFile(pki_dir + "/ca.crt", corp->cert_pem);
  WriteFile(pki_dir + "/server.crt", *cert);
  WriteFile(pki_dir + "/server.key", *key);
  std::filesystem::permissions(pki_dir + "/server.key", std::filesystem::perms::owner_read |
                                                            std::filesystem::perms::owner_write);

  farm.StartCoordinator();
  AgentCertOptions o;
  o.ca = &*corp;
  farm.GiveAgentCertificate("a", "a", o);
  farm.StartAgent("a", {}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; })) << "agent did not register";
  EXPECT_EQ(farm.Agents()[0].authentication(), "certificate");
  CliResult agents = farm.Cli({"agents"});
  EXPECT_EQ(agents.exit_code, 0) << agents.err;

  std::string out;
  ASSERT_EQ(RunToExit({MF_COORDINATOR_BIN, "join-token", "create", "--data-dir", farm.data_dir()},
                      farm.dir() + "/token.log", &out),
            0)
      << out;
  std::string token;
  for (absl::string_view line : absl::StrSplit(out, '\n')) {
    if (absl::StartsWith(line, "mfj1.")) token = std::string(line);
  }
  ASSERT_FALSE(token.empty()) << out;
  EXPECT_NE(RunToExit({MF_AGENT_BIN, "enroll", "--coordinator", farm.address(), "--token", token,
                       "--ca", farm.ca_file(), "--name", "b", "--work-dir", farm.dir() + "/agent-b"},
                      farm.dir() + "/enroll.log", &out),
            0);
  EXPECT_TRUE(StrContains(out, "it has no CA key (ca.key), so agent certificates come from the "
                               "operator's own CA"))
      << out;
}

}  // namespace
}  // namespace musafarm::e2e
