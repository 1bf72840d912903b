// The Store conformance suite: what every Store backend must do, run against
// each of them (SQLite and PostgreSQL). A new backend joins with one line at the bottom:
// an INSTANTIATE_TEST_SUITE_P naming how to open it. Tests of one backend's own
// format (SQLite's columns, WAL, schema version) stay in its own test file.

#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/api_times.h"
#include "coordinator/postgres_store.h"
#include "coordinator/secret_cipher.h"
#include "coordinator/store.h"
#include "coordinator/store_test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/private_postgres.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;
using namespace store_testing;  // NOLINT: the fixtures are this suite's vocabulary

// How to open one backend.
struct StoreBackend {
  std::string name;
  // Opens the store kept under `dir`, an empty directory the test owns.
  // Opening the same `dir` again is a coordinator restart: it sees what was
  // committed before.
  std::function<absl::StatusOr<std::unique_ptr<Store>>(const std::string& dir)> open;
};

// gtest names the parameter by this in test listings and failures.
void PrintTo(const StoreBackend& backend, std::ostream* os) { *os << backend.name; }

class StoreConformanceTest : public ::testing::TestWithParam<StoreBackend> {
 protected:
  std::unique_ptr<Store> Open() {
    absl::StatusOr<std::unique_ptr<Store>> store = GetParam().open(dir_.path());
    if (!store.ok()) {
      ADD_FAILURE() << GetParam().name << " in " << dir_.path() << ": " << store.status();
      return nullptr;
    }
    return *std::move(store);
  }

 private:
  TempDir dir_;
};

TEST_P(StoreConformanceTest, SecretsLiveApartSurviveReopenAndAreDropped) {
  const std::string kSecret = "https://u:very-secret-token-81f2@dl.example/x.tar";
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    Mutation m;
    m.jobs.push_back(MakeJob("7"));
    m.job_secrets.push_back({"7", {{"MUSA_TOOLKITS_URL", kSecret}, {"MCCL_URL", "m"}}});
    ASSERT_TRUE(store->Commit(m).ok());
    auto secrets = store->LoadSecrets();
    ASSERT_TRUE(secrets.ok()) << secrets.status();
    EXPECT_EQ((*secrets)["7"]["MUSA_TOOLKITS_URL"], kSecret);
    EXPECT_EQ((*secrets)["7"]["MCCL_URL"], "m");
    // Never inside a job row.
    auto jobs = store->LoadJobs();
    ASSERT_TRUE(jobs.ok());
    EXPECT_EQ(jobs->at(0).DebugString().find("very-secret"), std::string::npos);
  }
  std::unique_ptr<Store> store = Open();  // survives a restart
  ASSERT_NE(store, nullptr);
  auto secrets = store->LoadSecrets();
  ASSERT_TRUE(secrets.ok());
  EXPECT_EQ((*secrets)["7"]["MUSA_TOOLKITS_URL"], kSecret);
  Mutation drop;
  drop.drop_secrets.push_back("7");
  ASSERT_TRUE(store->Commit(drop).ok());
  secrets = store->LoadSecrets();
  ASSERT_TRUE(secrets.ok());
  EXPECT_TRUE(secrets->empty());
}

TEST_P(StoreConformanceTest, JobWithTasksRoundTripsEveryField) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);

  v1::Job job;
  job.set_id("7");
  job.set_name("nightly");
  job.set_state(v1::JOB_STATE_FAILED);
  job.set_created_us(1'700'000'000'000'000);
  job.set_ended_us(1'700'000'000'900'000);
  job.set_pipeline_file("pipelines/nightly.yaml");
  job.add_axes("py");
  (*job.mutable_params())["tag"] = "nightly";
  job.add_secrets("MUSA_TOOLKITS_URL");
  v1::JobInput* input = job.add_inputs();  // issue 17
  input->set_name("torch_musa");
  input->mutable_tree()->set_sha256(std::string(64, 'a'));
  input->mutable_tree()->set_size_bytes(123);
  input->set_source("git+file:///src/torch_musa#main");
  input->set_commit(std::string(40, 'c'));
  input->set_files(2);
  input->set_bytes(4096);
  job.mutable_scheduled_time()->set_seconds(1'700'000'000);  // issue 14
  *job.add_tasks() = FullTask("7", "3.8", "setup", 1);
  *job.add_tasks() = FullTask("7", "3.8", "base", 2);
  FillApiTimes(&job);
  FillUnsetScalars(&job);
  ExpectAllFieldsSet(job, "job");

  // The job still carries its tasks in m.jobs, which Commit must ignore: each
  // task must come back once, from the tasks rows.
  Mutation m;
  m.jobs.push_back(job);
  m.tasks.assign(job.tasks().begin(), job.tasks().end());
  ASSERT_TRUE(store->Commit(m).ok());

  absl::StatusOr<std::vector<v1::Job>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_TRUE(ProtoEq(job, (*jobs)[0]));
}

TEST_P(StoreConformanceTest, UpsertKeepsInsertionOrderAndUpdates) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);

  // Ids chosen so that neither id nor name order is insertion order.
  Mutation submit9;
  submit9.jobs = {MakeJob("9")};
  submit9.tasks = {MakeTask("9", "z"), MakeTask("9", "a"), MakeTask("9", "m")};
  ASSERT_TRUE(store->Commit(submit9).ok());
  Mutation submit10;
  submit10.jobs = {MakeJob("10")};
  submit10.tasks = {MakeTask("10", "b")};
  ASSERT_TRUE(store->Commit(submit10).ok());

  // Later: a task is added to job 9 after job 10 exists, and the first rows change.
  v1::Task z = MakeTask("9", "z", v1::TASK_STATE_RUNNING);
  z.set_attempt_id(4);
  z.set_agent("builder-1");
  v1::Job done9 = MakeJob("9");
  done9.set_state(v1::JOB_STATE_SUCCEEDED);
  done9.set_ended_us(2000);
  Mutation update;
  update.jobs = {done9};
  update.tasks = {MakeTask("9", "late"), z, MakeTask("9", "a", v1::TASK_STATE_QUEUED)};
  ASSERT_TRUE(store->Commit(update).ok());

  absl::StatusOr<std::vector<v1::Job>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 2u);
  const v1::Job& j9 = (*jobs)[0];
  EXPECT_EQ(j9.id(), "9");
  EXPECT_EQ(j9.state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(j9.ended_us(), 2000);
  EXPECT_EQ(TaskIds(j9), (std::vector<std::string>{"9/z", "9/a", "9/m", "9/late"}));
  EXPECT_TRUE(ProtoEq(z, j9.tasks(0)));
  EXPECT_EQ(j9.tasks(1).state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(j9.tasks(2).state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ((*jobs)[1].id(), "10");
  EXPECT_EQ(TaskIds((*jobs)[1]), (std::vector<std::string>{"10/b"}));
}

TEST_P(StoreConformanceTest, TransitionsRoundTripOldestFirst) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  Mutation submit;
  submit.jobs = {MakeJob("7")};
  submit.tasks = {MakeTask("7", "a"), MakeTask("7", "b")};
  ASSERT_TRUE(store->Commit(submit).ok());

  const uint64_t big = (uint64_t{1} << 63) + 1;  // stored in a signed column
  const std::vector<Transition> a = {
      {"7/a", 0, v1::TASK_STATE_PENDING, v1::TASK_STATE_QUEUED, 300, "ready"},
      {"7/a", big, v1::TASK_STATE_QUEUED, v1::TASK_STATE_ASSIGNED, 200, "agent builder-1"},
      {"7/a", big, v1::TASK_STATE_ASSIGNED, v1::TASK_STATE_QUEUED, 100, "agent lost"},
  };
  // Interleaved with another task's, over two commits, and with timestamps
  // running backwards: order must come from insertion, not from at_us.
  Mutation m1;
  m1.transitions = {
      a[0], {"7/b", 1, v1::TASK_STATE_PENDING, v1::TASK_STATE_SKIPPED, 1, "dep"}, a[1]};
  ASSERT_TRUE(store->Commit(m1).ok());
  Mutation m2;
  m2.transitions = {a[2]};
  ASSERT_TRUE(store->Commit(m2).ok());

  absl::StatusOr<std::vector<Transition>> got = store->LoadTransitions("7/a");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE(i);
    EXPECT_EQ((*got)[i].task_id, a[i].task_id);
    EXPECT_EQ((*got)[i].attempt_id, a[i].attempt_id);
    EXPECT_EQ((*got)[i].from, a[i].from);
    EXPECT_EQ((*got)[i].to, a[i].to);
    EXPECT_EQ((*got)[i].at_us, a[i].at_us);
    EXPECT_EQ((*got)[i].reason, a[i].reason);
  }

  absl::StatusOr<std::vector<Transition>> b = store->LoadTransitions("7/b");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->size(), 1u);
  absl::StatusOr<std::vector<Transition>> none = store->LoadTransitions("7/nope");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_TRUE(none->empty());
}

TEST_P(StoreConformanceTest, AgentsRoundTripByName) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  Mutation m;
  m.agents = {FullAgent("zeta", 1), FullAgent("alpha", 2), FullAgent("mid", 3)};
  ExpectAllFieldsSet(m.agents[0], "agent");
  ASSERT_TRUE(store->Commit(m).ok());

  v1::Agent alpha = FullAgent("alpha", 8);
  alpha.set_state(v1::AGENT_STATE_DISCONNECTED);
  alpha.clear_running_tasks();
  Mutation update;
  update.agents = {alpha};
  ASSERT_TRUE(store->Commit(update).ok());

  absl::StatusOr<std::vector<v1::Agent>> agents = store->LoadAgents();
  ASSERT_TRUE(agents.ok()) << agents.status();
  ASSERT_EQ(agents->size(), 3u);
  EXPECT_TRUE(ProtoEq(alpha, (*agents)[0]));
  EXPECT_TRUE(ProtoEq(FullAgent("mid", 3), (*agents)[1]));
  EXPECT_TRUE(ProtoEq(FullAgent("zeta", 1), (*agents)[2]));
}

TEST_P(StoreConformanceTest, FailedMutationLeavesNothingBehind) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  Mutation before;
  before.jobs = {MakeJob("1")};
  before.tasks = {MakeTask("1", "a", v1::TASK_STATE_QUEUED)};
  ASSERT_TRUE(store->Commit(before).ok());

  // Each kind of row is written before the failing task, which names a job
  // that does not exist.
  Mutation bad;
  bad.jobs = {MakeJob("2")};
  bad.tasks = {MakeTask("2", "x"), MakeTask("1", "a", v1::TASK_STATE_RUNNING),
               MakeTask("404", "orphan")};
  bad.transitions = {{"1/a", 1, v1::TASK_STATE_QUEUED, v1::TASK_STATE_RUNNING, 10, "go"}};
  bad.agents = {FullAgent("builder-1", 1)};
  absl::Status s = store->Commit(bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("404/orphan"));

  absl::StatusOr<std::vector<v1::Job>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].id(), "1");
  ASSERT_EQ((*jobs)[0].tasks_size(), 1);
  EXPECT_EQ((*jobs)[0].tasks(0).state(), v1::TASK_STATE_QUEUED);
  absl::StatusOr<std::vector<Transition>> transitions = store->LoadTransitions("1/a");
  ASSERT_TRUE(transitions.ok());
  EXPECT_TRUE(transitions->empty());
  absl::StatusOr<std::vector<v1::Agent>> agents = store->LoadAgents();
  ASSERT_TRUE(agents.ok());
  EXPECT_TRUE(agents->empty());

  // The failed transaction is closed: the same mutation without the orphan commits.
  bad.tasks.pop_back();
  ASSERT_TRUE(store->Commit(bad).ok());
  jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(jobs->size(), 2u);
}

TEST_P(StoreConformanceTest, RejectsEmptyIdsBeforeWriting) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  Mutation m;
  m.jobs = {MakeJob("1")};
  m.tasks = {MakeTask("1", "a")};
  m.tasks.back().clear_id();
  EXPECT_EQ(store->Commit(m).code(), absl::StatusCode::kInvalidArgument);

  Mutation agent;
  agent.agents = {v1::Agent()};
  EXPECT_EQ(store->Commit(agent).code(), absl::StatusCode::kInvalidArgument);

  absl::StatusOr<std::vector<v1::Job>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_TRUE(jobs->empty());
}

TEST_P(StoreConformanceTest, SurvivesReopen) {
  v1::Job job = MakeJob("7");
  *job.add_tasks() = FullTask("7", "3.8", "setup", 1);
  *job.add_tasks() = FullTask("7", "3.9", "setup", 2);
  const Transition t{"7/3.8/setup", 5, v1::TASK_STATE_RUNNING, v1::TASK_STATE_FAILED, 99, "oom"};
  const v1::Agent agent = FullAgent("builder-1", 4);
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    Mutation m;
    m.jobs = {job};
    m.tasks.assign(job.tasks().begin(), job.tasks().end());
    m.transitions = {t};
    m.agents = {agent};
    ASSERT_TRUE(store->Commit(m).ok());
  }

  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<v1::Job>> jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_TRUE(ProtoEq(job, (*jobs)[0]));
  absl::StatusOr<std::vector<Transition>> transitions = store->LoadTransitions(t.task_id);
  ASSERT_TRUE(transitions.ok()) << transitions.status();
  ASSERT_EQ(transitions->size(), 1u);
  EXPECT_EQ((*transitions)[0].reason, "oom");
  EXPECT_EQ((*transitions)[0].to, v1::TASK_STATE_FAILED);
  absl::StatusOr<std::vector<v1::Agent>> agents = store->LoadAgents();
  ASSERT_TRUE(agents.ok()) << agents.status();
  ASSERT_EQ(agents->size(), 1u);
  EXPECT_TRUE(ProtoEq(agent, (*agents)[0]));
}

// --- enrolment ----------------------------------------------------------------

JoinToken MakeToken(const std::string& id, int64_t uses, absl::Time expire) {
  JoinToken t;
  t.id = id;
  t.salt = "5a17";
  t.secret_hash = "ab" + id;
  t.uses_left = uses;
  t.expire_time = expire;
  t.created_at = absl::FromUnixSeconds(1'700'000'000);
  t.description = "rack 4";
  return t;
}

TEST_P(StoreConformanceTest, JoinTokensRoundTripAndSurviveReopen) {
  const absl::Time expire = absl::FromUnixSeconds(1'800'000'000);
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->InsertJoinToken(MakeToken("0000beef", 3, expire)).ok());
    EXPECT_EQ(store->InsertJoinToken(MakeToken("0000beef", 1, expire)).code(),
              absl::StatusCode::kAlreadyExists);
    EXPECT_EQ(store->InsertJoinToken(MakeToken("", 1, expire)).code(),
              absl::StatusCode::kInvalidArgument);
  }
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<JoinToken> t = store->LoadJoinToken("0000beef");
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->salt, "5a17");
  EXPECT_EQ(t->secret_hash, "ab0000beef");
  EXPECT_EQ(t->uses_left, 3);
  EXPECT_EQ(t->expire_time, expire);
  EXPECT_EQ(t->created_at, absl::FromUnixSeconds(1'700'000'000));
  EXPECT_EQ(t->description, "rack 4");
  EXPECT_EQ(store->LoadJoinToken("12345678").status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<std::vector<JoinToken>> all = store->LoadJoinTokens();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].id, "0000beef");
}

TEST_P(StoreConformanceTest, JoinTokenUsesRunOutAndExpire) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  const absl::Time expire = absl::FromUnixSeconds(1'800'000'000);
  const absl::Time before = expire - absl::Seconds(1);
  ASSERT_TRUE(store->InsertJoinToken(MakeToken("aaaaaaaa", 2, expire)).ok());
  ASSERT_TRUE(store->InsertJoinToken(MakeToken("bbbbbbbb", 5, expire)).ok());

  absl::StatusOr<int64_t> left = store->UseJoinToken("aaaaaaaa", before);
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_EQ(*left, 1);
  left = store->UseJoinToken("aaaaaaaa", before);
  ASSERT_TRUE(left.ok()) << left.status();
  EXPECT_EQ(*left, 0);
  left = store->UseJoinToken("aaaaaaaa", before);
  EXPECT_EQ(left.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(left.status().message()), HasSubstr("used up"));

  left = store->UseJoinToken("bbbbbbbb", expire);  // expiry is exclusive
  EXPECT_EQ(left.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(left.status().message()), HasSubstr("expired at 2027-01-15T08:00:00Z"));
  EXPECT_EQ(store->UseJoinToken("cccccccc", before).status().code(), absl::StatusCode::kNotFound);

  // A refused use takes nothing.
  absl::StatusOr<JoinToken> b = store->LoadJoinToken("bbbbbbbb");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->uses_left, 5);
}

TEST_P(StoreConformanceTest, CertificatesAndRevocationsRoundTrip) {
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    for (const auto& [serial, name, at] :
         std::vector<std::tuple<std::string, std::string, int>>{
             {"0b", "a", 20}, {"0a", "a", 10}, {"0c", "b", 5}}) {
      IssuedCertificate c;
      c.serial_hex = serial;
      c.name = name;
      c.fingerprint = "sha256:" + serial;
      c.issued_at = absl::FromUnixSeconds(at);
      c.not_after = absl::FromUnixSeconds(at + 100);
      ASSERT_TRUE(store->RecordCertificate(c).ok());
    }
    ASSERT_TRUE(store->InsertRevocation({"a", absl::FromUnixSeconds(30), {"0a", "0b"}}).ok());
    ASSERT_TRUE(store->InsertRevocation({"z", absl::FromUnixSeconds(40), {}}).ok());
    EXPECT_EQ(store->InsertRevocation({"", absl::FromUnixSeconds(40), {}}).code(),
              absl::StatusCode::kInvalidArgument);
  }
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<IssuedCertificate>> a = store->LoadCertificates("a");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->size(), 2u);
  EXPECT_EQ((*a)[0].serial_hex, "0a");  // oldest first
  EXPECT_EQ((*a)[0].fingerprint, "sha256:0a");
  EXPECT_EQ((*a)[0].not_after, absl::FromUnixSeconds(110));
  EXPECT_EQ((*a)[1].serial_hex, "0b");
  EXPECT_EQ((*a)[1].issued_at, absl::FromUnixSeconds(20));
  absl::StatusOr<std::vector<IssuedCertificate>> none = store->LoadCertificates("nobody");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  absl::StatusOr<std::vector<Revocation>> revoked = store->LoadRevocations();
  ASSERT_TRUE(revoked.ok()) << revoked.status();
  ASSERT_EQ(revoked->size(), 2u);
  EXPECT_EQ((*revoked)[0].name, "a");
  EXPECT_EQ((*revoked)[0].revoked_at, absl::FromUnixSeconds(30));
  EXPECT_EQ((*revoked)[0].serials, (std::vector<std::string>{"0a", "0b"}));
  EXPECT_EQ((*revoked)[1].name, "z");
  EXPECT_TRUE((*revoked)[1].serials.empty());
}

ApiToken MakeApiTokenRow(const std::string& id, const std::string& user, int created) {
  ApiToken t;
  t.id = id;
  t.user = user;
  t.role = "submitter";
  t.salt = "5a17";
  t.secret_hash = "ab" + id;
  t.created_at = absl::FromUnixSeconds(created);
  t.created_by = "root";
  return t;
}

AuditEntry Audit(const std::string& user, const std::string& action, int at) {
  return {0, absl::FromUnixSeconds(at), user, "admin", action, "t", "ipv4:127.0.0.1:1", "ok"};
}

TEST_P(StoreConformanceTest, ApiTokensRoundTripRevokeAndSurviveReopen) {
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    ApiToken expiring = MakeApiTokenRow("00000000000000aa", "alice", 20);
    expiring.expire_time = absl::FromUnixSeconds(1'800'000'000);
    ASSERT_TRUE(store->InsertApiToken(expiring, Audit("root", "token.create", 20)).ok());
    ASSERT_TRUE(store->InsertApiToken(MakeApiTokenRow("00000000000000bb", "bob", 10),
                                      Audit("root", "token.create", 10))
                    .ok());
    EXPECT_EQ(store->InsertApiToken(MakeApiTokenRow("00000000000000bb", "eve", 30),
                                    Audit("root", "token.create", 30))
                  .code(),
              absl::StatusCode::kAlreadyExists);
    EXPECT_EQ(store->InsertApiToken(MakeApiTokenRow("", "eve", 30), Audit("root", "x", 30)).code(),
              absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE(store->RevokeApiToken("00000000000000bb", absl::FromUnixSeconds(50),
                                      Audit("root", "token.revoke", 50))
                    .ok());
    // A second revocation keeps the first time.
    ASSERT_TRUE(store->RevokeApiToken("00000000000000bb", absl::FromUnixSeconds(60),
                                      Audit("root", "token.revoke", 60))
                    .ok());
    EXPECT_EQ(store->RevokeApiToken("ffffffffffffffff", absl::FromUnixSeconds(60),
                                    Audit("root", "token.revoke", 60))
                  .code(),
              absl::StatusCode::kNotFound);
  }
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<ApiToken> a = store->LoadApiToken("00000000000000aa");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->user, "alice");
  EXPECT_EQ(a->role, "submitter");
  EXPECT_EQ(a->salt, "5a17");
  EXPECT_EQ(a->secret_hash, "ab00000000000000aa");
  EXPECT_EQ(a->created_at, absl::FromUnixSeconds(20));
  EXPECT_EQ(a->created_by, "root");
  EXPECT_EQ(a->expire_time, absl::FromUnixSeconds(1'800'000'000));
  EXPECT_FALSE(a->revoked());
  absl::StatusOr<ApiToken> b = store->LoadApiToken("00000000000000bb");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->expire_time, absl::InfiniteFuture());
  EXPECT_EQ(b->revoked_at, absl::FromUnixSeconds(50));
  EXPECT_EQ(store->LoadApiToken("ffffffffffffffff").status().code(), absl::StatusCode::kNotFound);
  absl::StatusOr<std::vector<ApiToken>> all = store->LoadApiTokens();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[0].user, "bob");  // by creation time
  EXPECT_EQ((*all)[1].user, "alice");

  // Each successful create and revoke wrote its audit line in the same
  // transaction; the refused ones wrote none.
  absl::StatusOr<std::vector<AuditEntry>> audit = store->LoadAudit({});
  ASSERT_TRUE(audit.ok()) << audit.status();
  std::vector<std::string> actions;
  for (const AuditEntry& e : *audit) actions.push_back(e.action);
  EXPECT_EQ(actions, (std::vector<std::string>{"token.create", "token.create", "token.revoke",
                                               "token.revoke"}));
}

TEST_P(StoreConformanceTest, AuditLinesAppendAndFilter) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  Mutation m;
  m.audit = {Audit("alice", "submit", 10), Audit("bob", "cancel", 20), Audit("alice", "drain", 30),
             Audit("alice", "cancel", 40)};
  m.audit[1].peer = "ipv6:[::1]:5";
  m.audit[1].outcome = "denied: not theirs";
  ASSERT_TRUE(store->Commit(m).ok());

  absl::StatusOr<std::vector<AuditEntry>> all = store->LoadAudit({});
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 4u);
  EXPECT_EQ((*all)[1].user, "bob");
  EXPECT_EQ((*all)[1].role, "admin");
  EXPECT_EQ((*all)[1].action, "cancel");
  EXPECT_EQ((*all)[1].target, "t");
  EXPECT_EQ((*all)[1].peer, "ipv6:[::1]:5");
  EXPECT_EQ((*all)[1].outcome, "denied: not theirs");
  EXPECT_EQ((*all)[1].time, absl::FromUnixSeconds(20));
  EXPECT_LT((*all)[0].seq, (*all)[1].seq);

  AuditFilter f;
  f.user = "alice";
  f.since = absl::FromUnixSeconds(20);
  absl::StatusOr<std::vector<AuditEntry>> some = store->LoadAudit(f);
  ASSERT_TRUE(some.ok()) << some.status();
  ASSERT_EQ(some->size(), 2u);
  EXPECT_EQ((*some)[0].action, "drain");  // oldest first
  EXPECT_EQ((*some)[1].action, "cancel");

  f = AuditFilter();
  f.limit = 1;  // the newest one
  some = store->LoadAudit(f);
  ASSERT_TRUE(some.ok()) << some.status();
  ASSERT_EQ(some->size(), 1u);
  EXPECT_EQ((*some)[0].time, absl::FromUnixSeconds(40));
}

// --- the job archive (coordinator/job_archive.h) -----------------------------

// A finished job ended at `ended_s` (seconds), holding `bytes`.
v1::Job EndedJob(const std::string& id, int64_t ended_s, uint64_t bytes = 0,
                    int64_t retention_s = 0) {
  v1::Job j = MakeJob(id);
  j.set_state(v1::JOB_STATE_SUCCEEDED);
  j.set_ended_us(ended_s * 1'000'000);
  j.set_stored_bytes(bytes);
  j.set_retention_seconds(retention_s);
  return j;
}

std::vector<std::string> Ids(const std::vector<v1::Job>& jobs) {
  std::vector<std::string> out;
  for (const v1::Job& j : jobs) out.push_back(j.id());
  return out;
}

std::vector<std::string> Ids(const std::vector<FinishedJob>& jobs) {
  std::vector<std::string> out;
  for (const auto& j : jobs) out.push_back(j.id);
  return out;
}

TEST_P(StoreConformanceTest, ArchiveLoadsUnfinishedJobsOnlyAndFinishedOnesById) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  Mutation m;
  m.jobs = {EndedJob("1", 10), MakeJob("2"), EndedJob("3", 30), MakeJob("4")};
  m.tasks = {MakeTask("1", "a", v1::TASK_STATE_SUCCEEDED), MakeTask("2", "a"),
             MakeTask("2", "b"), MakeTask("3", "a", v1::TASK_STATE_FAILED), MakeTask("4", "a")};
  ASSERT_TRUE(store->Commit(m).ok());
  JobArchive& archive = store->archive();
  const uint64_t before = archive.rows_read();
  absl::StatusOr<std::vector<v1::Job>> unfinished = archive.LoadUnfinishedJobs();
  ASSERT_TRUE(unfinished.ok()) << unfinished.status();
  EXPECT_EQ(Ids(*unfinished), (std::vector<std::string>{"2", "4"}));
  EXPECT_EQ(TaskIds((*unfinished)[0]), (std::vector<std::string>{"2/a", "2/b"}));
  EXPECT_EQ(TaskIds((*unfinished)[1]), (std::vector<std::string>{"4/a"}));
  // Two job rows and three task rows, nothing of the finished ones.
  EXPECT_EQ(archive.rows_read() - before, 5u);

  absl::StatusOr<v1::Job> three = archive.LoadJob("3");
  ASSERT_TRUE(three.ok()) << three.status();
  EXPECT_EQ(three->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(TaskIds(*three), (std::vector<std::string>{"3/a"}));
  EXPECT_TRUE(absl::IsNotFound(archive.LoadJob("9").status()));
  absl::StatusOr<int64_t> max = archive.MaxJobNumber();
  ASSERT_TRUE(max.ok()) << max.status();
  EXPECT_EQ(*max, 4);
}

TEST_P(StoreConformanceTest, ArchiveListsNewestFirstWithFilters) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  Mutation m;
  for (int i = 1; i <= 6; ++i) {
    v1::Job j = i % 2 == 0 ? EndedJob(absl::StrCat(i), i) : MakeJob(absl::StrCat(i));
    j.set_name(i <= 3 ? "nightly" : "pr");
    j.set_submitter(i % 3 == 0 ? "ann" : "bob");
    j.set_created_us(i * 1'000'000);
    m.jobs.push_back(j);
  }
  ASSERT_TRUE(store->Commit(m).ok());
  JobArchive& archive = store->archive();
  auto list = [&](JobFilter f) {
    absl::StatusOr<std::vector<v1::Job>> jobs = archive.ListJobs(f);
    EXPECT_TRUE(jobs.ok()) << jobs.status();
    return jobs.ok() ? Ids(*jobs) : std::vector<std::string>{};
  };
  JobFilter f;
  EXPECT_EQ(list(f), (std::vector<std::string>{"6", "5", "4", "3", "2", "1"}));
  f.limit = 2;
  EXPECT_EQ(list(f), (std::vector<std::string>{"6", "5"}));
  f = JobFilter();
  f.states = {v1::JOB_STATE_RUNNING};
  EXPECT_EQ(list(f), (std::vector<std::string>{"5", "3", "1"}));
  f = JobFilter();
  f.name_contains = "nightly";
  EXPECT_EQ(list(f), (std::vector<std::string>{"3", "2", "1"}));
  f.name_contains = "igh";  // a substring
  EXPECT_EQ(list(f), (std::vector<std::string>{"3", "2", "1"}));
  f.name_contains = "%";  // as typed: no LIKE pattern
  EXPECT_EQ(list(f), std::vector<std::string>{});
  f = JobFilter();
  f.submitter = "ann";
  EXPECT_EQ(list(f), (std::vector<std::string>{"6", "3"}));
  f = JobFilter();
  f.created_after = absl::FromUnixSeconds(5);
  EXPECT_EQ(list(f), (std::vector<std::string>{"6", "5"}));
  f = JobFilter();
  f.created_before = absl::FromUnixSeconds(3);  // before, not at
  EXPECT_EQ(list(f), (std::vector<std::string>{"2", "1"}));
  // Several at once, as `jobs --state running --user bob --since --older-than`.
  f.states = {v1::JOB_STATE_RUNNING};
  f.submitter = "bob";
  f.created_after = absl::FromUnixSeconds(1);
  f.created_before = absl::FromUnixSeconds(6);
  EXPECT_EQ(list(f), (std::vector<std::string>{"5", "1"}));
  // JobMatches, for jobs held in memory, says the same of each of them.
  absl::StatusOr<std::vector<v1::Job>> all = archive.ListJobs(JobFilter());
  ASSERT_TRUE(all.ok());
  std::vector<std::string> matched;
  for (const v1::Job& j : *all) {
    if (JobMatches(f, j)) matched.push_back(j.id());
  }
  EXPECT_EQ(matched, (std::vector<std::string>{"5", "1"}));
}

TEST_P(StoreConformanceTest, ArchiveFindsExpiredJobsByAgeAndSize) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  Mutation m;
  // Ended at 100 s, 200 s, 300 s; job 4 keeps itself 50 s; job 5 runs.
  m.jobs = {EndedJob("1", 100, 10), EndedJob("2", 200, 20), EndedJob("3", 300, 30),
            EndedJob("4", 390, 40, 50), MakeJob("5")};
  ASSERT_TRUE(store->Commit(m).ok());
  JobArchive& archive = store->archive();
  const absl::Time now = absl::FromUnixSeconds(450);
  auto expired = archive.ExpiredByAge(now, absl::Seconds(200), 10);
  ASSERT_TRUE(expired.ok()) << expired.status();
  // 1 and 2 are older than 200 s; 4 is older than its own 50 s; 3 is not.
  EXPECT_EQ(Ids(*expired), (std::vector<std::string>{"1", "2", "4"}));
  EXPECT_EQ((*expired)[2].retention_seconds, 50);
  EXPECT_EQ((*expired)[1].stored_bytes, 20u);
  expired = archive.ExpiredByAge(now, absl::Seconds(200), 1);
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(Ids(*expired), (std::vector<std::string>{"1"}));
  expired = archive.ExpiredByAge(now, absl::InfiniteDuration(), 10);  // no farm age
  ASSERT_TRUE(expired.ok());
  EXPECT_EQ(Ids(*expired), (std::vector<std::string>{"4"}));
  auto oldest = archive.OldestFinished(2);
  ASSERT_TRUE(oldest.ok()) << oldest.status();
  EXPECT_EQ(Ids(*oldest), (std::vector<std::string>{"1", "2"}));
  absl::StatusOr<uint64_t> bytes = archive.FinishedBytes();
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  EXPECT_EQ(*bytes, 100u);
}

TEST_P(StoreConformanceTest, ArchiveDeletesFinishedJobsOnlyAndQueuesTheirUnsharedImages) {
  Mutation m;
  v1::Job one = EndedJob("1", 100);
  one.add_pushed_images("reg:5000/a:1");
  one.add_pushed_images("reg:5000/shared:1");
  v1::Job two = EndedJob("2", 200);
  two.add_pushed_images("reg:5000/shared:1");
  v1::Job three = MakeJob("3");
  m.jobs = {one, two, three};
  m.tasks = {MakeTask("1", "a", v1::TASK_STATE_SUCCEEDED), MakeTask("3", "a")};
  m.transitions.push_back(
      Transition{"1/a", 1, v1::TASK_STATE_QUEUED, v1::TASK_STATE_SUCCEEDED, 5, "ok"});
  m.job_secrets.push_back({"1", {{"S", "v"}}});
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->Commit(m).ok());
    JobArchive& archive = store->archive();
    // A running job is refused, and nothing of the batch goes.
    absl::Status refused = archive.DeleteFinishedJobs({"1", "3"});
    EXPECT_EQ(refused.code(), absl::StatusCode::kFailedPrecondition) << refused;
    EXPECT_THAT(refused.message(), HasSubstr("job 3 has not finished"));
    EXPECT_TRUE(archive.LoadJob("1").ok());

    ASSERT_TRUE(archive.DeleteFinishedJobs({"1"}).ok());
    EXPECT_TRUE(absl::IsNotFound(archive.LoadJob("1").status()));
    auto transitions = store->LoadTransitions("1/a");
    ASSERT_TRUE(transitions.ok());
    EXPECT_TRUE(transitions->empty());
    auto secrets = store->LoadSecrets();
    ASSERT_TRUE(secrets.ok());
    EXPECT_EQ(secrets->count("1"), 0u);
    // Job 2 still names the shared tag: only a:1 is queued.
    auto pending = archive.PendingImageDeletions(10);
    ASSERT_TRUE(pending.ok()) << pending.status();
    EXPECT_EQ(*pending, (std::vector<std::string>{"reg:5000/a:1"}));
    EXPECT_TRUE(*archive.ImageReferenced("reg:5000/shared:1"));
    EXPECT_FALSE(*archive.ImageReferenced("reg:5000/a:1"));
    ASSERT_TRUE(archive.DeleteFinishedJobs({"1"}).ok());  // again: nothing to do
  }
  std::unique_ptr<Store> store = Open();  // the outbox and the id survive a restart
  ASSERT_NE(store, nullptr);
  JobArchive& archive = store->archive();
  ASSERT_TRUE(archive.DeleteFinishedJobs({"2"}).ok());
  auto pending = archive.PendingImageDeletions(10);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(*pending, (std::vector<std::string>{"reg:5000/a:1", "reg:5000/shared:1"}));
  ASSERT_TRUE(archive.ImagesDeleted({"reg:5000/a:1"}).ok());
  pending = archive.PendingImageDeletions(10);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(*pending, (std::vector<std::string>{"reg:5000/shared:1"}));
  auto jobs = store->LoadJobs();
  ASSERT_TRUE(jobs.ok());
  EXPECT_EQ(Ids(*jobs), (std::vector<std::string>{"3"}));
  // The highest id is remembered after its job is deleted: ids are never reused.
  Mutation four;
  four.jobs = {EndedJob("9", 10)};
  ASSERT_TRUE(store->Commit(four).ok());
  ASSERT_TRUE(archive.DeleteFinishedJobs({"9"}).ok());
  absl::StatusOr<int64_t> max = archive.MaxJobNumber();
  ASSERT_TRUE(max.ok());
  EXPECT_EQ(*max, 9);
}

// --- schedules (coordinator/schedule_store.h) --------------------------------

v1::Schedule MakeSchedule(const std::string& name, int64_t next_fire_s) {
  v1::Schedule s;
  s.set_name(name);
  s.set_cron("@daily");
  s.set_timezone("Europe/Berlin");
  s.mutable_request()->set_spec_yaml("stages: []");
  s.add_secrets("TOKEN");
  s.set_created_by("ann");
  s.mutable_next_fire_time()->set_seconds(next_fire_s);
  return s;
}

ScheduleFire MakeFire(const v1::Schedule& schedule, int64_t slot_s, const std::string& job_id) {
  ScheduleFire f;
  f.schedule = schedule;
  f.schedule.mutable_last_fire_time()->set_seconds(slot_s);
  f.run.mutable_scheduled_time()->set_seconds(slot_s);
  f.run.set_job_id(job_id);
  f.run.set_outcome(job_id.empty() ? "skipped: job 1 still running" : "submitted");
  f.run.set_trigger("cron");
  return f;
}

TEST_P(StoreConformanceTest, SchedulesRoundTripWithSealedSecretsFiresAndRemoval) {
  const v1::Schedule nightly = MakeSchedule("nightly", 1000);
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    ScheduleStore& schedules = store->schedules();
    ASSERT_TRUE(schedules.Insert(nightly, {{"TOKEN", "s3cret"}}).ok());
    EXPECT_EQ(schedules.Insert(nightly, {}).code(), absl::StatusCode::kAlreadyExists);
    v1::Schedule paused = nightly;
    paused.set_paused(true);
    ASSERT_TRUE(schedules.Update(paused).ok());
    EXPECT_EQ(schedules.Update(MakeSchedule("nope", 1)).code(), absl::StatusCode::kNotFound);

    // A fired slot commits with its job; a skipped one on its own.
    Mutation m;
    m.jobs = {MakeJob("1")};
    m.schedule_fires = {MakeFire(nightly, 1000, "1")};
    ASSERT_TRUE(store->Commit(m).ok());
    ASSERT_TRUE(schedules.RecordFire(MakeFire(nightly, 2000, "")).ok());
    // The fire of a schedule that is gone fails the whole mutation.
    Mutation orphan;
    orphan.jobs = {MakeJob("2")};
    orphan.schedule_fires = {MakeFire(MakeSchedule("gone", 1), 3000, "2")};
    EXPECT_EQ(store->Commit(orphan).code(), absl::StatusCode::kNotFound);
    EXPECT_TRUE(absl::IsNotFound(store->archive().LoadJob("2").status()));
  }
  std::unique_ptr<Store> store = Open();  // all of it survives a restart
  ASSERT_NE(store, nullptr);
  ScheduleStore& schedules = store->schedules();
  absl::StatusOr<std::vector<v1::Schedule>> all = schedules.LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1u);
  v1::Schedule want = MakeFire(nightly, 2000, "").schedule;
  EXPECT_TRUE(ProtoEq(want, (*all)[0]));
  absl::StatusOr<std::map<std::string, std::string>> secrets = schedules.LoadSecrets("nightly");
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  EXPECT_EQ(*secrets, (std::map<std::string, std::string>{{"TOKEN", "s3cret"}}));
  absl::StatusOr<std::vector<v1::ScheduleRun>> runs = schedules.LastRuns("nightly", 10);
  ASSERT_TRUE(runs.ok()) << runs.status();
  ASSERT_EQ(runs->size(), 2u);  // newest first
  EXPECT_TRUE(ProtoEq(MakeFire(nightly, 2000, "").run, (*runs)[0]));
  EXPECT_TRUE(ProtoEq(MakeFire(nightly, 1000, "1").run, (*runs)[1]));
  absl::StatusOr<std::vector<std::string>> recent = schedules.RecentJobIds(1);
  ASSERT_TRUE(recent.ok()) << recent.status();
  EXPECT_EQ(*recent, std::vector<std::string>{"1"});

  ASSERT_TRUE(schedules.Delete("nightly").ok());
  EXPECT_EQ(schedules.Delete("nightly").code(), absl::StatusCode::kNotFound);
  all = schedules.LoadAll();
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->empty());
  secrets = schedules.LoadSecrets("nightly");
  ASSERT_TRUE(secrets.ok());
  EXPECT_TRUE(secrets->empty());
  runs = schedules.LastRuns("nightly", 10);
  ASSERT_TRUE(runs.ok());
  EXPECT_TRUE(runs->empty());
}

// --- the webhook outbox (coordinator/webhook_outbox.h) -----------------------

TEST_P(StoreConformanceTest, WebhookOutboxQueuesRetriesRemovesAndDropsJobWebhooks) {
  v1::Webhook hook;
  hook.set_url("https://hooks.example/x?token=abc");
  hook.set_format(v1::WEBHOOK_FORMAT_SLACK);
  hook.set_on_first_failure(true);
  auto delivery = [](const std::string& id, int64_t next_s) {
    WebhookDelivery d;
    d.id = id;
    d.job_id = "1";
    d.url = "https://hooks.example/" + id;
    d.body = std::string("{\"job\":\"1\"}\0bytes", 17);
    d.next_attempt = absl::FromUnixSeconds(next_s);
    return d;
  };
  {
    std::unique_ptr<Store> store = Open();
    ASSERT_NE(store, nullptr);
    Mutation m;
    m.jobs = {MakeJob("1")};
    m.job_webhooks = {{"1", {hook}}};
    m.deliveries = {delivery("d1", 100), delivery("d2", 50)};
    ASSERT_TRUE(store->Commit(m).ok());
  }
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  WebhookOutbox& outbox = store->webhooks();
  auto hooks = outbox.LoadJobWebhooks();
  ASSERT_TRUE(hooks.ok()) << hooks.status();
  ASSERT_EQ(hooks->size(), 1u);
  ASSERT_EQ((*hooks)["1"].size(), 1u);
  EXPECT_TRUE(ProtoEq(hook, (*hooks)["1"][0]));

  auto ids = [&](int64_t now_s) {
    std::vector<std::string> out;
    auto due = outbox.Due(absl::FromUnixSeconds(now_s), 10);
    EXPECT_TRUE(due.ok()) << due.status();
    if (due.ok()) {
      for (const WebhookDelivery& d : *due) out.push_back(d.id);
    }
    return out;
  };
  EXPECT_EQ(ids(75), std::vector<std::string>{"d2"});
  EXPECT_EQ(ids(200), (std::vector<std::string>{"d2", "d1"}));  // soonest first
  auto due = outbox.Due(absl::FromUnixSeconds(200), 1);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 1u);
  EXPECT_EQ((*due)[0].url, "https://hooks.example/d2");
  EXPECT_EQ((*due)[0].body, delivery("d2", 50).body);
  EXPECT_EQ((*due)[0].next_attempt, absl::FromUnixSeconds(50));
  EXPECT_EQ(*outbox.NextDue(), absl::FromUnixSeconds(50));

  ASSERT_TRUE(outbox.Retry("d2", 1, absl::FromUnixSeconds(300), "HTTP 500").ok());
  EXPECT_EQ(ids(200), std::vector<std::string>{"d1"});
  due = outbox.Due(absl::FromUnixSeconds(300), 10);
  ASSERT_TRUE(due.ok());
  ASSERT_EQ(due->size(), 2u);
  EXPECT_EQ((*due)[1].attempts, 1);
  EXPECT_EQ((*due)[1].last_error, "HTTP 500");
  ASSERT_TRUE(outbox.Remove("d1").ok());
  ASSERT_TRUE(outbox.Remove("d2").ok());
  EXPECT_EQ(*outbox.NextDue(), absl::InfiniteFuture());

  Mutation drop;
  drop.drop_webhooks = {"1"};
  ASSERT_TRUE(store->Commit(drop).ok());
  hooks = outbox.LoadJobWebhooks();
  ASSERT_TRUE(hooks.ok());
  EXPECT_TRUE(hooks->empty());
}

std::string BackendName(const ::testing::TestParamInfo<StoreBackend>& info) {
  return info.param.name;
}

// --- backends: one line each -------------------------------------------------
INSTANTIATE_TEST_SUITE_P(
    Sqlite, StoreConformanceTest,
    ::testing::Values(StoreBackend{
        "sqlite", [](const std::string& dir) { return OpenSqliteStore(dir + "/musafarm.db"); }}),
    BackendName);

// A database per test directory in the run's cluster (tests/support/private_postgres.h):
// opening the same directory again reconnects to the same database.
absl::StatusOr<std::unique_ptr<Store>> OpenTestPostgres(const std::string& dir) {
  static const SecretCipher cipher = *SecretCipher::Create(std::string(SecretCipher::kKeySize, 'k'));
  absl::StatusOr<std::string> url = test_support::TestDatabaseFor(dir);
  if (!url.ok()) return url.status();
  return OpenPostgresStore(*url, cipher);
}

INSTANTIATE_TEST_SUITE_P(Postgres, StoreConformanceTest,
                         ::testing::Values(StoreBackend{"postgres", OpenTestPostgres}),
                         BackendName);

}  // namespace
}  // namespace musafarm::coordinator
