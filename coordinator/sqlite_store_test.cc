#include "coordinator/sqlite_store.h"

#include <sqlite3.h>
#include <stdlib.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "coordinator/secret_cipher.h"
#include "coordinator/store_test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;
using namespace store_testing;  // NOLINT: the fixtures shared with the conformance suite

// A second, raw connection, for what the Store interface does not show: the
// schema version, the copied columns, locks.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) ADD_FAILURE() << sqlite3_errmsg(db_);
  }
  ~RawDb() { sqlite3_close(db_); }

  void Exec(const std::string& sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << (err ? err : "?");
    }
    sqlite3_free(err);
  }

  // Every row of `sql`, its columns as text joined by '|'.
  std::vector<std::string> Rows(const std::string& sql) {
    std::vector<std::string> rows;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return rows;
    }
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      std::string row;
      for (int i = 0; i < sqlite3_column_count(stmt); ++i) {
        const unsigned char* text = sqlite3_column_text(stmt, i);
        absl::StrAppend(&row, i ? "|" : "", text ? reinterpret_cast<const char*>(text) : "NULL");
      }
      rows.push_back(row);
    }
    sqlite3_finalize(stmt);
    return rows;
  }

  // The first column of the first row of `sql`, as bytes.
  std::string Blob(const std::string& sql) {
    std::string out;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return out;
    }
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      const void* p = sqlite3_column_blob(stmt, 0);
      out.assign(static_cast<const char*>(p), p ? sqlite3_column_bytes(stmt, 0) : 0);
    } else {
      ADD_FAILURE() << sql << ": no row";
    }
    sqlite3_finalize(stmt);
    return out;
  }

  std::string One(const std::string& sql) {
    std::vector<std::string> rows = Rows(sql);
    return rows.empty() ? "<no rows>" : rows[0];
  }

 private:
  sqlite3* db_ = nullptr;
};

std::unique_ptr<Store> Open(const std::string& path) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(path);
  if (!store.ok()) {
    ADD_FAILURE() << "OpenSqliteStore(" << path << "): " << store.status();
    return nullptr;
  }
  return *std::move(store);
}

// What SQLite needs beyond the conformance suite's secret tests: dropped
// secrets are overwritten on disk (secure_delete), not just unlinked from the
// b-tree, so they are in no file of the database directory.
TEST(SqliteStoreTest, DroppedSecretsAreGoneFromTheFile) {
  TempDir dir;
  const std::string kSecret = "https://u:very-secret-token-81f2@dl.example/x.tar";
  std::unique_ptr<Store> store = Open(dir.File("farm.db"));
  ASSERT_NE(store, nullptr);
  Mutation m;
  m.jobs.push_back(MakeJob("7"));
  m.job_secrets.push_back({"7", {{"MUSA_TOOLKITS_URL", kSecret}, {"MCCL_URL", "m"}}});
  ASSERT_TRUE(store->Commit(m).ok());
  store.reset();
  store = Open(dir.File("farm.db"));  // and a restart in between
  ASSERT_NE(store, nullptr);
  Mutation drop;
  drop.drop_secrets.push_back("7");
  ASSERT_TRUE(store->Commit(drop).ok());
  // Not in the database file, its WAL or anything else in the directory.
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_EQ(bytes.find("very-secret-token"), std::string::npos) << entry.path();
  }
}

// Every file in `dir` that holds `needle`.
std::vector<std::string> FilesHolding(const std::string& dir, const std::string& needle) {
  std::vector<std::string> found;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (bytes.find(needle) != std::string::npos) found.push_back(entry.path());
  }
  return found;
}

SecretCipher TestCipher(char fill = 'k') {
  return *SecretCipher::Create(std::string(SecretCipher::kKeySize, fill));
}

// Issue 12: with a cipher, a held secret is in no file of the database
// directory in clear (database, WAL, shm), and reads back as itself.
TEST(SqliteStoreTest, SealedSecretsAreNeverInClearOnDisk) {
  TempDir dir;
  const std::string kSecret = "https://u:held-secret-token-5c1e@dl.example/x.tar";
  const SecretCipher cipher = TestCipher();
  auto store = OpenSqliteStore(dir.File("farm.db"), cipher);
  ASSERT_TRUE(store.ok()) << store.status();
  Mutation m;
  m.jobs.push_back(MakeJob("7"));
  m.job_secrets.push_back({"7", {{"URL", kSecret}, {"EMPTY", ""}}});
  ASSERT_TRUE((*store)->Commit(m).ok());
  EXPECT_THAT(FilesHolding(dir.path(), "held-secret-token"), ::testing::IsEmpty());
  auto loaded = (*store)->LoadSecrets();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)["7"]["URL"], kSecret);
  EXPECT_EQ((*loaded)["7"]["EMPTY"], "");
  // The rows hold the sealed form: magic, nonce, ciphertext, tag.
  RawDb raw(dir.File("farm.db"));
  const std::string stored = raw.Blob("SELECT value FROM job_secrets WHERE name = 'URL'");
  EXPECT_TRUE(SecretCipher::IsSealed(stored));
  EXPECT_EQ(stored.size(), SecretCipher::kSealedMagic.size() + SecretCipher::kNonceSize +
                               kSecret.size() + SecretCipher::kTagSize);
  store->reset();
  // Another key does not open them, and says so.
  auto other = OpenSqliteStore(dir.File("farm.db"), TestCipher('o'));
  ASSERT_TRUE(other.ok()) << other.status();
  auto refused = (*other)->LoadSecrets();
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(refused.status().message()),
              ::testing::MatchesRegex("store: secret '[A-Z]+' of job 7 .*"));
  EXPECT_THAT(refused.status().message(), ::testing::Not(HasSubstr("held-secret-token")));
}

// A database from before sealing: its clear rows are sealed at open, and no
// copy in clear is left in the directory's files.
TEST(SqliteStoreTest, ClearSecretsOfAnOlderDatabaseAreSealedAtOpen) {
  TempDir dir;
  const std::string kSecret = "old-clear-secret-token-77aa";
  {
    std::unique_ptr<Store> old = Open(dir.File("farm.db"));  // no cipher: as before
    ASSERT_NE(old, nullptr);
    Mutation m;
    m.jobs.push_back(MakeJob("3"));
    m.job_secrets.push_back({"3", {{"TOKEN", kSecret}}});
    ASSERT_TRUE(old->Commit(m).ok());
  }
  ASSERT_THAT(FilesHolding(dir.path(), "old-clear-secret"), ::testing::Not(::testing::IsEmpty()));
  auto store = OpenSqliteStore(dir.File("farm.db"), TestCipher());
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_THAT(FilesHolding(dir.path(), "old-clear-secret"), ::testing::IsEmpty());
  auto loaded = (*store)->LoadSecrets();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ((*loaded)["3"]["TOKEN"], kSecret);
}

// The conformance suite checks that a failed mutation names the task; SQLite
// also says which constraint refused it.
TEST(SqliteStoreTest, ForeignKeyFailureNamesTheConstraint) {
  std::unique_ptr<Store> store = Open(":memory:");
  ASSERT_NE(store, nullptr);
  Mutation bad;
  bad.tasks = {MakeTask("404", "orphan")};
  absl::Status s = store->Commit(bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("store: insert task 404/orphan: FOREIGN KEY"));
}

TEST(SqliteStoreTest, CopiedColumnsFollowTheProto) {
  TempDir dir;
  const std::string path = dir.File("farm.db");
  std::unique_ptr<Store> store = Open(path);
  ASSERT_NE(store, nullptr);

  // The job arrives with its task embedded, as Mutation allows.
  Mutation submit;
  submit.jobs = {MakeJob("7")};
  *submit.jobs[0].add_tasks() = MakeTask("7", "base");
  submit.tasks = {MakeTask("7", "base")};
  ASSERT_TRUE(store->Commit(submit).ok());

  v1::Job job = MakeJob("7");
  job.set_name("renamed");
  job.set_state(v1::JOB_STATE_FAILED);
  job.set_ended_us(5000);
  v1::Task task = MakeTask("7", "base", v1::TASK_STATE_RUNNING);
  task.set_attempt_id(42);
  task.set_agent("builder-2");
  *job.add_tasks() = task;
  Mutation update;
  update.jobs = {job};
  update.tasks = {task};
  update.transitions = {
      {"7/base", 42, v1::TASK_STATE_ASSIGNED, v1::TASK_STATE_RUNNING, 4000, "started"}};
  ASSERT_TRUE(store->Commit(update).ok());

  RawDb raw(path);
  EXPECT_EQ(raw.One("SELECT name, state, created_us, ended_us FROM jobs WHERE id = '7'"),
            absl::StrCat("renamed|", v1::JOB_STATE_FAILED, "|1000|5000"));
  EXPECT_EQ(raw.One("SELECT job_id, state, attempt_id, agent FROM tasks WHERE id = '7/base'"),
            absl::StrCat("7|", v1::TASK_STATE_RUNNING, "|42|builder-2"));
  EXPECT_EQ(raw.One("SELECT task_id, attempt_id, from_state, to_state, at_us, reason "
                    "FROM transitions"),
            absl::StrCat("7/base|42|", v1::TASK_STATE_ASSIGNED, "|", v1::TASK_STATE_RUNNING,
                         "|4000|started"));
  EXPECT_EQ(raw.One("SELECT count(*) FROM tasks"), "1");

  // Tasks have rows of their own; the job's proto must not carry copies.
  v1::Job stored;
  ASSERT_TRUE(stored.ParseFromString(raw.Blob("SELECT proto FROM jobs WHERE id = '7'")));
  EXPECT_EQ(stored.tasks_size(), 0);
  EXPECT_EQ(stored.name(), "renamed");
}

// A submission appended to the mutation that places its tasks (Core's one
// commit for both, issue 19): the new rows go in first, the later rows of the
// same task win, and one transaction holds all of it.
TEST(SqliteStoreTest, AnAppendedMutationCommitsWithTheOneItJoinsLaterRowsLast) {
  TempDir dir;
  const std::string path = dir.File("farm.db");
  std::unique_ptr<Store> store = Open(path);
  ASSERT_NE(store, nullptr);

  Mutation placement;  // what the group held before the submission joined it
  v1::Task assigned = MakeTask("9", "base", v1::TASK_STATE_ASSIGNED);
  assigned.set_attempt_id(3);
  assigned.set_agent("a1");
  placement.tasks = {assigned};
  placement.transitions = {
      {"9/base", 3, v1::TASK_STATE_QUEUED, v1::TASK_STATE_ASSIGNED, 2000, "assigned"}};
  Mutation submit;
  submit.jobs = {MakeJob("9")};
  submit.tasks = {MakeTask("9", "base", v1::TASK_STATE_QUEUED)};
  submit.transitions = {
      {"9/base", 0, v1::TASK_STATE_UNSPECIFIED, v1::TASK_STATE_QUEUED, 1000, "submitted"}};
  submit.audit = {AuditEntry{}};
  submit.audit[0].time = absl::FromUnixMicros(1000);
  submit.audit[0].user = "sam";
  submit.audit[0].action = "submit";

  Mutation group;
  AppendMutation(group, std::move(submit));
  AppendMutation(group, std::move(placement));
  ASSERT_EQ(group.jobs.size(), 1u);
  ASSERT_EQ(group.tasks.size(), 2u);
  ASSERT_EQ(group.transitions.size(), 2u);
  ASSERT_EQ(group.audit.size(), 1u);
  ASSERT_TRUE(store->Commit(group).ok());

  RawDb raw(path);
  EXPECT_EQ(raw.One("SELECT state, attempt_id, agent FROM tasks WHERE id = '9/base'"),
            absl::StrCat(v1::TASK_STATE_ASSIGNED, "|3|a1"));
  EXPECT_EQ(raw.One("SELECT group_concat(reason, ',') FROM "
                    "(SELECT reason FROM transitions ORDER BY at_us)"),
            "submitted,assigned");
}

TEST(SqliteStoreTest, EmptyMutationTouchesNothing) {
  TempDir dir;
  const std::string path = dir.File("farm.db");
  std::unique_ptr<Store> store = Open(path);
  ASSERT_NE(store, nullptr);

  // Another connection holds the write lock. A no-op returns at once; a Commit
  // that began a transaction would wait out the busy timeout and then fail.
  RawDb other(path);
  other.Exec("BEGIN IMMEDIATE");
  EXPECT_TRUE(store->Commit(Mutation{}).ok());
  other.Exec("ROLLBACK");
}

TEST(SqliteStoreTest, FileDatabaseUsesWal) {
  TempDir dir;
  const std::string path = dir.File("farm.db");
  std::unique_ptr<Store> store = Open(path);
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(RawDb(path).One("PRAGMA journal_mode"), "wal");  // kept in the file
}

TEST(SqliteStoreTest, SchemaCreationIsIdempotent) {
  TempDir dir;
  const std::string path = dir.File("farm.db");
  Mutation m;
  m.jobs = {MakeJob("1")};
  m.tasks = {MakeTask("1", "a")};
  {
    std::unique_ptr<Store> first = Open(path);
    ASSERT_NE(first, nullptr);
    ASSERT_TRUE(first->Commit(m).ok());
    // A second open while the first is still open, then more after it closes.
    std::unique_ptr<Store> second = Open(path);
    ASSERT_NE(second, nullptr);
  }
  std::unique_ptr<Store> third = Open(path);
  ASSERT_NE(third, nullptr);
  absl::StatusOr<std::vector<v1::Job>> jobs = third->LoadJobs();
  ASSERT_TRUE(jobs.ok()) << jobs.status();
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].tasks_size(), 1);

  RawDb raw(path);
  EXPECT_EQ(raw.One("PRAGMA user_version"), std::to_string(kSqliteSchemaVersion));
  EXPECT_EQ(raw.Rows("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"),
            (std::vector<std::string>{"agents", "api_tokens", "audit", "blob_pins", "blobs",
                                      "counters", "image_outbox", "issued_certificates",
                                      "job_images", "job_secrets", "job_webhooks", "jobs",
                                      "join_tokens", "revocations", "schedule_runs",
                                      "schedule_secrets", "schedules", "tasks", "transitions",
                                      "webhook_outbox"}));
}

// The audit log is append-only in the file itself: not even an operator's
// sqlite3 shell (or a bug) can change or delete a line.
TEST(SqliteStoreTest, AuditLogRefusesUpdateAndDelete) {
  TempDir dir;
  const std::string path = dir.File("farm.db");
  std::unique_ptr<Store> store = Open(path);
  ASSERT_NE(store, nullptr);
  Mutation m;
  m.audit.push_back({0, absl::FromUnixSeconds(100), "alice", "admin", "drain", "a1", "ipv4:1",
                     "ok"});
  ASSERT_TRUE(store->Commit(m).ok());

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  for (const char* sql : {"UPDATE audit SET user = 'mallory'", "DELETE FROM audit"}) {
    char* err = nullptr;
    EXPECT_NE(sqlite3_exec(db, sql, nullptr, nullptr, &err), SQLITE_OK) << sql;
    EXPECT_THAT(err ? std::string(err) : "", HasSubstr("append-only")) << sql;
    sqlite3_free(err);
  }
  sqlite3_close(db);
  EXPECT_EQ(RawDb(path).One("SELECT user || ' ' || action FROM audit"), "alice drain");
}

TEST(SqliteStoreTest, RefusesNewerSchemaVersion) {
  TempDir dir;
  const std::string path = dir.File("farm.db");
  ASSERT_NE(Open(path), nullptr);
  const int newer = kSqliteSchemaVersion + 1;
  RawDb(path).Exec(absl::StrCat("PRAGMA user_version = ", newer));

  absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(path));
  EXPECT_THAT(std::string(store.status().message()),
              HasSubstr(absl::StrCat("schema version ", newer)));
  EXPECT_EQ(RawDb(path).One("PRAGMA user_version"), std::to_string(newer));  // left alone
}

TEST(SqliteStoreTest, UnopenablePathIsAClearError) {
  TempDir dir;
  const std::string missing = dir.File("no/such/dir/farm.db");
  absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(missing);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(missing));

  // Opening succeeds lazily on a file that is not a database; reading it fails.
  const std::string junk = dir.File("junk.db");
  std::ofstream(junk) << std::string(4096, 'x');
  store = OpenSqliteStore(junk);
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(std::string(store.status().message()), HasSubstr(junk));
  EXPECT_THAT(std::string(store.status().message()), HasSubstr("not a database"));
}

}  // namespace
}  // namespace musafarm::coordinator
