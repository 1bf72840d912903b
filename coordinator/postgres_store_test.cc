// The PostgreSQL store's own tests: what the conformance suite cannot see
// through the Store interface (sealed values in the tables, the audit trigger,
// the schema version, pipelined batches, errors, reconnection). Each test
// takes a fresh database in the run's cluster (tests/support/private_postgres.h).

#include <libpq-fe.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "coordinator/pg_connection.h"
#include "coordinator/postgres_store.h"
#include "coordinator/secret_cipher.h"
#include "coordinator/store_test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/private_postgres.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using namespace store_testing;  // NOLINT: the fixtures shared with the conformance suite

// A second, raw connection to the store's database.
class RawDb {
 public:
  explicit RawDb(const std::string& url) : conn_(PQconnectdb(url.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) ADD_FAILURE() << PQerrorMessage(conn_);
  }
  ~RawDb() { PQfinish(conn_); }

  // Runs `sql`; "" or the server's error.
  std::string Exec(const std::string& sql) {
    PGresult* r = PQexec(conn_, sql.c_str());
    const ExecStatusType st = PQresultStatus(r);
    std::string error = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? "" : PQresultErrorMessage(r);
    PQclear(r);
    return error;
  }

  // Every row of `sql`, its columns as text joined by '|'.
  std::vector<std::string> Rows(const std::string& sql) {
    std::vector<std::string> rows;
    PGresult* r = PQexec(conn_, sql.c_str());
    if (PQresultStatus(r) != PGRES_TUPLES_OK) ADD_FAILURE() << sql << ": " << PQresultErrorMessage(r);
    for (int i = 0; i < PQntuples(r); ++i) {
      std::string row;
      for (int j = 0; j < PQnfields(r); ++j) absl::StrAppend(&row, j ? "|" : "", PQgetvalue(r, i, j));
      rows.push_back(row);
    }
    PQclear(r);
    return rows;
  }

 private:
  PGconn* conn_;
};

class PostgresStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    test_support::PrivatePostgres* pg = test_support::TestPostgres(&error);
    ASSERT_NE(pg, nullptr) << error;
    absl::StatusOr<std::string> url = pg->CreateDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
  }

  std::unique_ptr<Store> Open() {
    absl::StatusOr<std::unique_ptr<Store>> store = OpenPostgresStore(url_, cipher_);
    if (!store.ok()) {
      ADD_FAILURE() << store.status();
      return nullptr;
    }
    return *std::move(store);
  }

  std::string url_;
  const SecretCipher cipher_ = *SecretCipher::Create(std::string(SecretCipher::kKeySize, 'k'));
};

TEST_F(PostgresStoreTest, SecretsAndWebhookUrlsAreSealedInTheTables) {
  const std::string kSecret = "very-secret-token-81f2";
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  v1::Schedule schedule;
  schedule.set_name("nightly");
  ASSERT_TRUE(store->schedules().Insert(schedule, {{"S", kSecret}}).ok());
  Mutation m;
  m.jobs = {MakeJob("7")};
  m.job_secrets = {{"7", {{"URL", kSecret}}}};
  v1::Webhook hook;
  hook.set_url("https://hooks.example/" + kSecret);
  m.job_webhooks = {{"7", {hook}}};
  WebhookDelivery d;
  d.id = "d1";
  d.job_id = "7";
  d.url = hook.url();
  m.deliveries = {d};
  ASSERT_TRUE(store->Commit(m).ok());

  RawDb raw(url_);
  for (const char* sql :
       {"SELECT encode(value, 'escape') FROM job_secrets",
        "SELECT encode(value, 'escape') FROM schedule_secrets",
        "SELECT encode(value, 'escape') FROM job_webhooks",
        "SELECT encode(target, 'escape') FROM webhook_outbox"}) {
    std::vector<std::string> rows = raw.Rows(sql);
    ASSERT_EQ(rows.size(), 1u) << sql;
    EXPECT_THAT(rows[0], Not(HasSubstr(kSecret))) << sql;
    EXPECT_THAT(rows[0], HasSubstr("mfsec1")) << sql;  // SecretCipher's magic
  }
  // And they open again.
  auto secrets = store->LoadSecrets();
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  EXPECT_EQ((*secrets)["7"]["URL"], kSecret);
}

TEST_F(PostgresStoreTest, AuditLogRefusesUpdateDeleteAndTruncate) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  Mutation m;
  m.audit = {{0, absl::FromUnixSeconds(1), "ann", "admin", "drain", "b1", "host", "ok"}};
  ASSERT_TRUE(store->Commit(m).ok());
  RawDb raw(url_);
  EXPECT_THAT(raw.Exec("UPDATE audit SET outcome = 'denied'"), HasSubstr("append-only"));
  EXPECT_THAT(raw.Exec("DELETE FROM audit"), HasSubstr("append-only"));
  EXPECT_THAT(raw.Exec("TRUNCATE audit"), HasSubstr("append-only"));
  EXPECT_EQ(raw.Rows("SELECT username, outcome FROM audit"), std::vector<std::string>{"ann|ok"});
}

TEST_F(PostgresStoreTest, SchemaVersionIsRecordedOnceAndANewerOneIsRefused) {
  // Two coordinators opening a new database at once: one migrates, the other
  // waits for it and finds the schema in place.
  std::vector<absl::Status> opened(2);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < opened.size(); ++i) {
    threads.emplace_back([&, i] { opened[i] = OpenPostgresStore(url_, cipher_).status(); });
  }
  for (std::thread& t : threads) t.join();
  for (const absl::Status& s : opened) EXPECT_TRUE(s.ok()) << s;
  RawDb raw(url_);
  EXPECT_EQ(raw.Rows("SELECT version FROM schema_version"),
            std::vector<std::string>{absl::StrCat(kPostgresSchemaVersion)});

  ASSERT_EQ(raw.Exec("UPDATE schema_version SET version = 99"), "");
  absl::StatusOr<std::unique_ptr<Store>> newer = OpenPostgresStore(url_, cipher_);
  EXPECT_EQ(newer.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(newer.status().message(), HasSubstr("schema version 99"));
}

TEST_F(PostgresStoreTest, ABatchOverManyPipelineChunksIsOneTransaction) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  // More statements than one pipeline chunk, the failing one in the last.
  Mutation m;
  m.jobs = {MakeJob("1")};
  const int n = static_cast<int>(pg::Connection::kPipelineChunk) * 2 + 10;
  for (int i = 0; i < n; ++i) m.tasks.push_back(MakeTask("1", absl::StrCat("t", i)));
  m.tasks.push_back(MakeTask("404", "orphan"));
  absl::Status s = store->Commit(m);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr("insert task 404/orphan"));
  RawDb raw(url_);
  EXPECT_EQ(raw.Rows("SELECT count(*) FROM tasks"), std::vector<std::string>{"0"});
  EXPECT_EQ(raw.Rows("SELECT count(*) FROM jobs"), std::vector<std::string>{"0"});

  m.tasks.pop_back();
  ASSERT_TRUE(store->Commit(m).ok());
  absl::StatusOr<v1::Job> job = store->archive().LoadJob("1");
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->tasks_size(), n);
  EXPECT_EQ(job->tasks(n - 1).id(), absl::StrCat("1/t", n - 1));  // insertion order
}

TEST_F(PostgresStoreTest, ReconnectsAfterTheServerDropsTheConnection) {
  std::unique_ptr<Store> store = Open();
  ASSERT_NE(store, nullptr);
  RawDb raw(url_);
  ASSERT_EQ(raw.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                     "datname = current_database() AND pid <> pg_backend_pid()"),
            "");
  // The call that finds the connection gone fails (nothing half-done is
  // retried behind the caller's back); the next one reconnects.
  absl::StatusOr<std::vector<v1::Agent>> lost = store->LoadAgents();
  EXPECT_EQ(lost.status().code(), absl::StatusCode::kUnavailable) << lost.status();
  Mutation m;
  m.agents = {FullAgent("builder-1", 2)};
  ASSERT_TRUE(store->Commit(m).ok());
  absl::StatusOr<std::vector<v1::Agent>> agents = store->LoadAgents();
  ASSERT_TRUE(agents.ok()) << agents.status();
  EXPECT_EQ(agents->size(), 1u);
}

// Leader fencing (issue 20): a store opened with epoch 1 after the epoch
// moved to 2 (a successor took over) writes nothing, through any writer.
TEST_F(PostgresStoreTest, ADeposedCoordinatorsWritesAreRefusedAndWriteNothing) {
  ASSERT_NE(Open(), nullptr);  // the schema
  RawDb raw(url_);
  ASSERT_EQ(raw.Exec("UPDATE leadership SET epoch = 1"), "");
  absl::StatusOr<std::unique_ptr<Store>> opened = OpenPostgresStore(url_, cipher_, 1);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Store& store = **opened;
  Mutation m;
  m.jobs = {MakeJob("1")};
  ASSERT_TRUE(store.Commit(m).ok());  // the leader's epoch: lands

  ASSERT_EQ(raw.Exec("UPDATE leadership SET epoch = 2"), "");  // the takeover
  m.jobs = {MakeJob("2")};
  absl::Status commit = store.Commit(m);
  EXPECT_EQ(commit.code(), absl::StatusCode::kFailedPrecondition) << commit;
  EXPECT_THAT(commit.message(), HasSubstr("deposed: epoch 1 is no longer the leader's (now 2)"));
  // A single-statement write (a Run outside a transaction) and a schedule's
  // batch are fenced too.
  Revocation rev;
  rev.name = "builder-9";
  rev.revoked_at = absl::FromUnixSeconds(5);
  absl::Status revoke = store.InsertRevocation(rev);
  EXPECT_EQ(revoke.code(), absl::StatusCode::kFailedPrecondition) << revoke;
  EXPECT_THAT(revoke.message(), HasSubstr("deposed"));
  v1::Schedule schedule;
  schedule.set_name("nightly");
  EXPECT_EQ(store.schedules().Insert(schedule, {}).code(), absl::StatusCode::kFailedPrecondition);
  // Reads are not fenced.
  EXPECT_TRUE(store.LoadAgents().ok());

  EXPECT_EQ(raw.Rows("SELECT id FROM jobs"), std::vector<std::string>{"1"});
  EXPECT_EQ(raw.Rows("SELECT count(*) FROM revocations"), std::vector<std::string>{"0"});
  EXPECT_EQ(raw.Rows("SELECT count(*) FROM schedules"), std::vector<std::string>{"0"});
}

// The race the fence closes: the successor's bump is in flight (its UPDATE
// holds the leadership row) when the deposed coordinator commits. The commit
// waits for the bump, then is refused; it never lands after the takeover.
TEST_F(PostgresStoreTest, ACommitRacingATakeoverWaitsForItAndIsRefused) {
  ASSERT_NE(Open(), nullptr);
  RawDb successor(url_);
  ASSERT_EQ(successor.Exec("UPDATE leadership SET epoch = 1"), "");
  absl::StatusOr<std::unique_ptr<Store>> opened = OpenPostgresStore(url_, cipher_, 1);
  ASSERT_TRUE(opened.ok()) << opened.status();
  ASSERT_EQ(successor.Exec("BEGIN; UPDATE leadership SET epoch = 2"), "");
  absl::Status commit;
  std::thread deposed([&] {
    Mutation m;
    m.jobs = {MakeJob("late")};
    commit = (*opened)->Commit(m);
  });
  // Wait until the deposed commit is blocked on the row the bump holds.
  RawDb watcher(url_);
  while (watcher.Rows("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND wait_event_type = 'Lock'") != std::vector<std::string>{"1"}) {
    absl::SleepFor(absl::Milliseconds(5));  // polling the condition
  }
  ASSERT_EQ(successor.Exec("COMMIT"), "");
  deposed.join();
  EXPECT_EQ(commit.code(), absl::StatusCode::kFailedPrecondition) << commit;
  EXPECT_THAT(commit.message(), HasSubstr("deposed: epoch 1 is no longer the leader's (now 2)"));
  EXPECT_EQ(watcher.Rows("SELECT count(*) FROM jobs"), std::vector<std::string>{"0"});
}

TEST_F(PostgresStoreTest, BadUrlsAreClearErrorsWithoutThePassword) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenPostgresStore("mysql://db/x", cipher_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(store.status().message(), HasSubstr("not a postgres://"));
  store = OpenPostgresStore("postgresql://farm:hunter2@/nodb?host=/nonexistent", cipher_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store.status().message(), HasSubstr("connect to \"postgresql://farm:xxx@/nodb"));
  EXPECT_THAT(store.status().message(), Not(HasSubstr("hunter2")));
}

}  // namespace
}  // namespace musafarm::coordinator
