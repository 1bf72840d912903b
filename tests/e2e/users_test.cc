// End-to-end tests of users (issue 11): API tokens, roles, submitters and the
// audit log, with the real coordinator (TLS), agents and CLI on loopback.
// Tokens are made on the coordinator's host with `musafarm-coordinator token
// create` while it runs, as an operator makes the first admin token.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

using ::absl::StrContains;

FarmOptions Tls() {
  FarmOptions o;
  o.tls = true;
  return o;
}

// A pipeline whose one task stays queued (the test farms give it no agent
// that may run it), so a job is there to cancel.
std::string QueuedPipeline(Farm& farm) {
  return farm.WritePipeline("queued.yaml",
                            "stages:\n  - name: s\n    exec: [\"true\"]\n    labels: [nowhere]\n");
}

// Submits as `token`'s user; returns the job id ("" on failure, reported).
std::string SubmitAs(Farm& farm, const std::string& token, const std::string& pipeline) {
  CliResult r = farm.CliWithToken(token, {"submit", pipeline, "-o", "json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  if (r.exit_code != 0) return "";
  return nlohmann::json::parse(r.out).value("id", "");
}

std::string SecretOf(const std::string& token) { return token.substr(token.rfind('.') + 1); }

// Point 1: a CLI without a token is refused by a TLS coordinator, clearly and
// with exit 2 (not 3: the coordinator was reached). A malformed or unknown
// token likewise.
TEST(UsersE2eTest, WithoutATokenATlsCoordinatorRefusesWithAClearMessageAndExitTwo) {
  Farm farm(Tls());
  farm.StartCoordinator();
  CliResult r = farm.CliWithToken("", {"jobs"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(StrContains(r.err, "no API token")) << r.err;
  EXPECT_TRUE(StrContains(r.err, "MUSAFARM_TOKEN")) << r.err;
  EXPECT_TRUE(StrContains(r.err, "musafarm token create")) << r.err;

  r = farm.CliWithToken("not-a-token", {"agents"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(StrContains(r.err, "malformed API token")) << r.err;

  // A well-formed token this farm never made: refused, and never echoed.
  const std::string stranger =
      "mfu1.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
  r = farm.CliWithToken(stranger, {"jobs"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(StrContains(r.err, "not valid here")) << r.err;
  EXPECT_FALSE(StrContains(r.err, SecretOf(stranger))) << r.err;

  // The harness's admin token (made on the host while the coordinator ran) works at once.
  r = farm.Cli({"jobs"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Point 1: a viewer reads but cannot submit; the refusal names user and role.
TEST(UsersE2eTest, AViewerReadsButCannotSubmit) {
  Farm farm(Tls());
  farm.StartCoordinator();
  const std::string viewer = farm.MakeToken("vera", "viewer");
  for (const std::vector<std::string>& read : std::vector<std::vector<std::string>>{
           {"jobs"}, {"agents"}}) {
    CliResult r = farm.CliWithToken(viewer, read);
    EXPECT_EQ(r.exit_code, 0) << read[0] << ": " << r.err;
  }
  CliResult r = farm.CliWithToken(viewer, {"submit", QueuedPipeline(farm)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(StrContains(r.err, "user vera (role viewer) cannot submit jobs")) << r.err;
  EXPECT_TRUE(farm.Cli({"jobs", "-o", "json"}).out.find("\"id\"") == std::string::npos)
      << "a refused submission made a job";
  // Nor do admin calls work for a viewer.
  r = farm.CliWithToken(viewer, {"token", "list"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(StrContains(r.err, "cannot manage API tokens")) << r.err;
}

// Point 1: a submitter cannot drain, nor cancel another user's job, and can
// cancel their own; an admin can do both. Every job records its submitter:
// `jobs --mine`, `jobs --user`, status (table and JSON).
TEST(UsersE2eTest, ASubmitterCancelsOwnJobsOnlyAndCannotDrainWhileAnAdminCan) {
  Farm farm(Tls());
  farm.StartCoordinator();
  farm.StartAgent("a1", {}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; })) << "agent did not register";
  const std::string alice = farm.MakeToken("alice", "submitter");
  const std::string bob = farm.MakeToken("bob", "submitter");
  const std::string pipeline = QueuedPipeline(farm);
  const std::string a1 = SubmitAs(farm, alice, pipeline);
  const std::string a2 = SubmitAs(farm, alice, pipeline);
  const std::string b1 = SubmitAs(farm, bob, pipeline);
  ASSERT_FALSE(a1.empty() || a2.empty() || b1.empty());

  CliResult r = farm.CliWithToken(alice, {"status", a1, "-o", "json"});
  EXPECT_EQ(nlohmann::json::parse(r.out).value("submitter", ""), "alice") << r.out;
  r = farm.CliWithToken(bob, {"status", a1});
  EXPECT_TRUE(StrContains(r.out, "submitted by alice")) << r.out;
  r = farm.CliWithToken(alice, {"jobs", "--mine", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> ids;
  const nlohmann::json mine = nlohmann::json::parse(r.out);
  for (const auto& j : mine["jobs"]) ids.push_back(j.value("id", ""));
  EXPECT_EQ(ids, (std::vector<std::string>{a2, a1}));
  r = farm.CliWithToken(alice, {"jobs", "--user", "bob"});
  EXPECT_TRUE(StrContains(r.out, "SUBMITTER")) << r.out;
  EXPECT_TRUE(StrContains(r.out, "bob")) << r.out;
  EXPECT_FALSE(StrContains(r.out, "alice")) << r.out;

  // Bob may not cancel Alice's job: refused, and the job runs on.
  r = farm.CliWithToken(bob, {"cancel", a1});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(StrContains(r.err, "user bob (role submitter)")) << r.err;
  EXPECT_TRUE(StrContains(r.err, "submitted by alice")) << r.err;
  r = farm.CliWithToken(bob, {"cancel", a1 + "/s"});  // nor one of its tasks
  EXPECT_EQ(r.exit_code, 2) << r.err;
  absl::StatusOr<v1::Job> job = farm.Job(a1);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_RUNNING);

  // Alice cancels her own.
  r = farm.CliWithToken(alice, {"cancel", a1});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(farm.WaitForJobEnd(a1));
  EXPECT_EQ(farm.Job(a1)->state(), v1::JOB_STATE_CANCELLED);

  // A submitter cannot drain; an admin can, and can cancel anyone's job.
  r = farm.CliWithToken(bob, {"drain", "a1"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(StrContains(r.err, "cannot drain or undrain agents")) << r.err;
  EXPECT_FALSE(farm.Agents()[0].draining());
  r = farm.Cli({"drain", "a1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(farm.Agents()[0].draining());
  EXPECT_EQ(farm.Cli({"undrain", "a1"}).exit_code, 0);
  r = farm.Cli({"cancel", b1});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(farm.WaitForJobEnd(b1));
}

// Point 1: a revoked or expired token is refused at once (the coordinator
// looks each token up at each call).
TEST(UsersE2eTest, ARevokedOrExpiredTokenIsRefusedAtOnce) {
  Farm farm(Tls());
  farm.StartCoordinator();
  const std::string carol = farm.MakeToken("carol", "submitter");
  const std::string dave = farm.MakeToken("dave", "viewer");
  ASSERT_EQ(farm.CliWithToken(carol, {"jobs"}).exit_code, 0);

  // By id, over the API (admin).
  CliResult r = farm.Cli({"token", "list", "-o", "json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string carol_id;
  const nlohmann::json listed = nlohmann::json::parse(r.out);
  for (const auto& t : listed["tokens"]) {
    if (t.value("user", "") == "carol") carol_id = t.value("id", "");
    EXPECT_FALSE(StrContains(t.dump(), SecretOf(carol))) << "token list shows a secret";
  }
  ASSERT_FALSE(carol_id.empty()) << r.out;
  r = farm.Cli({"token", "revoke", carol_id});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = farm.CliWithToken(carol, {"jobs"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(StrContains(r.err, "was revoked at")) << r.err;

  // By user name: every token of theirs.
  EXPECT_EQ(farm.Cli({"token", "revoke", "dave"}).exit_code, 0);
  r = farm.CliWithToken(dave, {"agents"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(StrContains(r.err, "was revoked at")) << r.err;

  // Expired: made with a 1 s lifetime over the API; refused once it passes.
  r = farm.Cli({"token", "create", "erin", "--role", "viewer", "--expires", "1s"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::string erin;
  for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
    if (absl::StartsWith(line, "mfu1.")) erin = std::string(line);
  }
  ASSERT_FALSE(erin.empty()) << r.out;
  ASSERT_TRUE(WaitFor([&] { return farm.CliWithToken(erin, {"jobs"}).exit_code != 0; },
                      absl::Seconds(30)));
  r = farm.CliWithToken(erin, {"jobs"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(StrContains(r.err, "expired at")) << r.err;
  // The others are untouched.
  EXPECT_EQ(farm.Cli({"jobs"}).exit_code, 0);
}

// Reads every regular file under `dir` (the database, its -wal and -shm,
// logs, keys...), by path.
std::map<std::string, std::string> FilesUnder(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) out[e.path().string()] = ReadFile(e.path().string());
  }
  return out;
}

// Point 2: after tokens are made (on the host and over the API) and used, no
// token's text nor its secret is in any file under the data directory, the
// SQLite WAL included, nor in the coordinator's log.
TEST(UsersE2eTest, NoTokenPlaintextUnderTheDataDirectoryIncludingTheWal) {
  Farm farm(Tls());
  farm.StartCoordinator();
  std::vector<std::string> tokens = {farm.admin_token(), farm.MakeToken("frank", "submitter"),
                                     farm.MakeToken("gina", "viewer", {"--expires", "90d"})};
  CliResult r = farm.Cli({"token", "create", "hank", "--role", "admin"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
    if (absl::StartsWith(line, "mfu1.")) tokens.emplace_back(line);
  }
  ASSERT_EQ(tokens.size(), 4u) << r.out;
  const std::string pipeline = QueuedPipeline(farm);
  for (const std::string& t : tokens) {
    EXPECT_EQ(farm.CliWithToken(t, {"jobs"}).exit_code, 0);
  }
  EXPECT_FALSE(SubmitAs(farm, tokens[1], pipeline).empty());
  EXPECT_EQ(farm.Cli({"token", "revoke", "gina"}).exit_code, 0);

  auto check = [&](const std::string& when) {
    const std::map<std::string, std::string> files = FilesUnder(farm.data_dir());
    ASSERT_TRUE(files.count(farm.data_dir() + "/musafarm.db")) << when;
    for (const auto& [path, content] : files) {
      for (const std::string& t : tokens) {
        EXPECT_FALSE(StrContains(content, t)) << when << ": " << path << " holds a token";
        EXPECT_FALSE(StrContains(content, SecretOf(t)))
            << when << ": " << path << " holds a token's secret";
      }
    }
    const std::string log = farm.coordinator()->Output();
    for (const std::string& t : tokens) {
      EXPECT_FALSE(StrContains(log, SecretOf(t))) << when << ": the coordinator log has a secret";
    }
  };
  // While it runs the WAL holds the latest writes; after a stop, the files as left.
  ASSERT_TRUE(std::filesystem::exists(farm.data_dir() + "/musafarm.db-wal"));
  check("running");
  farm.StopCoordinator(SIGTERM);
  check("stopped");
}

struct AuditLine {
  std::string user, action, target, outcome;
};

std::vector<AuditLine> ReadAudit(Farm& farm, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"audit", "-o", "json", "-n", "1000"};
  args.insert(args.end(), extra.begin(), extra.end());
  CliResult r = farm.Cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  std::vector<AuditLine> out;
  for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(line);
    out.push_back({j.value("user", ""), j.value("action", ""), j.value("target", ""),
                   j.value("outcome", "")});
    EXPECT_FALSE(j.value("peer", "").empty()) << line;
    EXPECT_FALSE(j.value("time", "").empty()) << line;
  }
  return out;
}

// Point 3: the audit log holds one line for each state-changing call of the
// test, allowed or refused, with the right user, and none for reads.
TEST(UsersE2eTest, TheAuditLogHoldsEachStateChangingCallWithTheRightUserAndNoneForReads) {
  Farm farm(Tls());
  farm.StartCoordinator();
  farm.StartAgent("a1", {}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; })) << "agent did not register";
  const std::string ivy = farm.MakeToken("ivy", "submitter");
  const std::string jack = farm.MakeToken("jack", "viewer");
  const std::string pipeline = QueuedPipeline(farm);

  const std::string job = SubmitAs(farm, ivy, pipeline);                   // submit ok
  ASSERT_FALSE(job.empty());
  EXPECT_EQ(farm.CliWithToken(jack, {"submit", pipeline}).exit_code, 2);   // submit denied
  EXPECT_EQ(farm.CliWithToken(jack, {"cancel", job}).exit_code, 2);        // cancel denied
  EXPECT_EQ(farm.CliWithToken(ivy, {"drain", "a1"}).exit_code, 2);         // drain denied
  EXPECT_EQ(farm.CliWithToken(ivy, {"cancel", job}).exit_code, 0);         // cancel ok
  EXPECT_EQ(farm.Cli({"drain", "a1"}).exit_code, 0);                       // drain ok
  EXPECT_EQ(farm.Cli({"undrain", "a1"}).exit_code, 0);                     // undrain ok
  EXPECT_EQ(farm.Cli({"drain", "nosuch"}).exit_code, 2);                   // drain error
  CliResult r = farm.Cli({"token", "create", "kim", "--role", "viewer"});  // token.create ok
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(farm.Cli({"token", "revoke", "kim"}).exit_code, 0);            // token.revoke ok
  // Reads, by everyone: none of them is audited.
  for (const std::string& t : {ivy, jack, farm.admin_token()}) {
    EXPECT_EQ(farm.CliWithToken(t, {"jobs"}).exit_code, 0);
    EXPECT_EQ(farm.CliWithToken(t, {"status", job}).exit_code, 1);  // a cancelled job: 1
    EXPECT_EQ(farm.CliWithToken(t, {"agents"}).exit_code, 0);
    EXPECT_EQ(farm.CliWithToken(t, {"logs", job + "/s"}).exit_code, 0);
  }
  EXPECT_EQ(farm.Cli({"token", "list"}).exit_code, 0);
  EXPECT_EQ(farm.CliWithToken(ivy, {"audit"}).exit_code, 2);  // not an admin: refused, a read

  std::vector<std::tuple<std::string, std::string, std::string>> got;
  for (const AuditLine& l : ReadAudit(farm)) {
    got.emplace_back(l.user, l.action,
                     l.outcome.substr(0, l.outcome.find(':')));  // ok | denied | error
  }
  const std::string host = absl::StrCat("host:", std::getenv("USER") ? std::getenv("USER") : "unknown");
  const std::vector<std::tuple<std::string, std::string, std::string>> want = {
      {host, "token.create", "ok"},        // the harness's admin token
      {host, "token.create", "ok"},        // ivy
      {host, "token.create", "ok"},        // jack
      {"ivy", "submit", "ok"},
      {"jack", "submit", "denied"},
      {"jack", "cancel", "denied"},
      {"ivy", "drain", "denied"},
      {"ivy", "cancel", "ok"},
      {"e2e-admin", "drain", "ok"},
      {"e2e-admin", "undrain", "ok"},
      {"e2e-admin", "drain", "error"},
      {"e2e-admin", "token.create", "ok"},
      {"e2e-admin", "token.revoke", "ok"},
  };
  EXPECT_EQ(got, want);

  // The targets say what was acted on; --user filters.
  std::vector<AuditLine> ivys = ReadAudit(farm, {"--user", "ivy"});
  ASSERT_EQ(ivys.size(), 3u);
  EXPECT_EQ(ivys[0].target, job);
  EXPECT_EQ(ivys[1].target, "a1");
  EXPECT_TRUE(StrContains(ivys[1].outcome, "cannot drain or undrain agents")) << ivys[1].outcome;
  EXPECT_EQ(ivys[2].target, job);
}

// --insecure without a token: the OS user the CLI names is the submitter, as
// before users existed (every insecure test keeps working).
TEST(UsersE2eTest, InsecureWithoutATokenTheOsUserSubmits) {
  Farm farm;
  farm.StartCoordinator();
  const std::string id = farm.Submit(QueuedPipeline(farm));
  ASSERT_FALSE(id.empty());
  CliResult r = farm.Cli({"status", id, "-o", "json"});
  const std::string submitter = nlohmann::json::parse(r.out).value("submitter", "");
  EXPECT_FALSE(submitter.empty()) << r.out;
  r = farm.Cli({"jobs", "--mine", "-o", "json"});
  EXPECT_TRUE(StrContains(r.out, "\"id\":\"" + id + "\"")) << r.out;
  // A token over plaintext is checked all the same, and the CLI warns it went in clear.
  r = farm.CliWithToken("mfu1.0123456789abcdef.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                        {"jobs"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(StrContains(r.err, "travels in clear text")) << r.err;
}

}  // namespace
}  // namespace musafarm::e2e
