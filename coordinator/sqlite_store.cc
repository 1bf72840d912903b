#include "coordinator/sqlite_store.h"

#include <sqlite3.h>

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/secret_cipher.h"
#include "coordinator/sqlite_job_archive.h"
#include "coordinator/sqlite_schedule_store.h"
#include "coordinator/sqlite_webhook_outbox.h"
#include "coordinator/sqlite_statement.h"

namespace musafarm::coordinator {
namespace {

// kMigrations[i] upgrades a database from user_version i to i + 1, inside the
// transaction that also sets the new user_version. Append only: files in the
// field have already run the released entries, so editing one changes nothing
// for them and makes new files differ from old ones.
constexpr const char* kMigrations[] = {
    // 0 -> 1: initial schema. See sqlite_store.h for what the columns mean.
    R"sql(
      CREATE TABLE jobs (
        seq        INTEGER PRIMARY KEY,
        id         TEXT NOT NULL UNIQUE,
        name       TEXT NOT NULL,
        state      INTEGER NOT NULL,
        created_us INTEGER NOT NULL,
        ended_us   INTEGER NOT NULL,
        proto      BLOB NOT NULL
      );
      CREATE TABLE tasks (
        seq        INTEGER PRIMARY KEY,
        id         TEXT NOT NULL UNIQUE,
        job_id     TEXT NOT NULL REFERENCES jobs(id),
        state      INTEGER NOT NULL,
        attempt_id INTEGER NOT NULL,
        agent      TEXT NOT NULL,
        proto      BLOB NOT NULL
      );
      CREATE INDEX tasks_job_id ON tasks(job_id);
      CREATE TABLE transitions (
        seq        INTEGER PRIMARY KEY,
        task_id    TEXT NOT NULL REFERENCES tasks(id),
        attempt_id INTEGER NOT NULL,
        from_state INTEGER NOT NULL,
        to_state   INTEGER NOT NULL,
        at_us      INTEGER NOT NULL,
        reason     TEXT NOT NULL
      );
      CREATE INDEX transitions_task_id ON transitions(task_id);
      -- NOT NULL because SQLite lets a non-integer PRIMARY KEY hold NULL.
      CREATE TABLE agents (
        name  TEXT NOT NULL PRIMARY KEY,
        proto BLOB NOT NULL
      );
    )sql",
    // 1 -> 2: job secrets, in a table of their own so that no query that feeds
    // a status, a log or the dashboard can return them.
    R"sql(
      CREATE TABLE job_secrets (
        job_id TEXT NOT NULL REFERENCES jobs(id),
        name   TEXT NOT NULL,
        value  BLOB NOT NULL,
        PRIMARY KEY (job_id, name)
      );
    )sql",
    // 2 -> 3: enrolment (issue 10). Join tokens keep only a salted hash of
    // their secret; serials are comma-separated hex.
    R"sql(
      CREATE TABLE join_tokens (
        id          TEXT NOT NULL PRIMARY KEY,
        salt        TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        uses_left   INTEGER NOT NULL,
        expire_us   INTEGER NOT NULL,
        created_us  INTEGER NOT NULL,
        description TEXT NOT NULL
      );
      CREATE TABLE issued_certificates (
        serial      TEXT NOT NULL PRIMARY KEY,
        name        TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        not_after_us INTEGER NOT NULL,
        issued_us   INTEGER NOT NULL
      );
      CREATE INDEX issued_certificates_name ON issued_certificates(name);
      CREATE TABLE revocations (
        name       TEXT NOT NULL PRIMARY KEY,
        revoked_us INTEGER NOT NULL,
        serials    TEXT NOT NULL
      );
    )sql",
    // 3 -> 4: users (issue 11). API tokens keep only a salted hash of their
    // secret; expire_us / revoked_us 0 mean never / not revoked. The audit log
    // is append-only: triggers refuse to change or delete a row.
    R"sql(
      CREATE TABLE api_tokens (
        id          TEXT NOT NULL PRIMARY KEY,
        user        TEXT NOT NULL,
        role        TEXT NOT NULL,
        salt        TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_us  INTEGER NOT NULL,
        created_by  TEXT NOT NULL,
        expire_us   INTEGER NOT NULL,
        revoked_us  INTEGER NOT NULL
      );
      CREATE INDEX api_tokens_user ON api_tokens(user);
      CREATE TABLE audit (
        seq     INTEGER PRIMARY KEY,
        at_us   INTEGER NOT NULL,
        user    TEXT NOT NULL,
        role    TEXT NOT NULL,
        action  TEXT NOT NULL,
        target  TEXT NOT NULL,
        peer    TEXT NOT NULL,
        outcome TEXT NOT NULL
      );
      CREATE INDEX audit_user ON audit(user, seq);
      CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    )sql",
    // 4 -> 5: retention and jobs read on demand (issue 16, coordinator/
    // sqlite_job_archive.cc). Columns copied from the job proto for filters and
    // expiry (rows of older versions read as '' / 0 until rewritten), the
    // images each job pushed, the registry deletions still to do, and the
    // highest job number of expired jobs (ids are never given twice).
    R"sql(
      ALTER TABLE jobs ADD COLUMN submitter TEXT NOT NULL DEFAULT '';
      ALTER TABLE jobs ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE jobs ADD COLUMN retention_s INTEGER NOT NULL DEFAULT 0;
      CREATE INDEX jobs_state ON jobs(state);
      CREATE INDEX jobs_ended ON jobs(ended_us);
      CREATE TABLE job_images (
        job_id TEXT NOT NULL REFERENCES jobs(id),
        image  TEXT NOT NULL,
        PRIMARY KEY (job_id, image)
      );
      CREATE INDEX job_images_image ON job_images(image);
      CREATE TABLE image_outbox (image TEXT NOT NULL PRIMARY KEY);
      CREATE TABLE counters (name TEXT NOT NULL PRIMARY KEY, value INTEGER NOT NULL);
    )sql",
    // 5 -> 6: schedules and notifications (issue 14; coordinator/
    // sqlite_schedule_store.cc). A schedule's secrets are sealed like job
    // secrets, in a table of their own; its runs name their job without a
    // foreign key, since retention deletes old jobs and the record stays.
    // Webhooks: the URLs of a running job (sealed: a URL is often a
    // credential) and the outbox of deliveries still to make.
    R"sql(
      CREATE TABLE schedules (
        name         TEXT NOT NULL PRIMARY KEY,
        paused       INTEGER NOT NULL,
        next_fire_us INTEGER NOT NULL,
        proto        BLOB NOT NULL
      );
      CREATE TABLE schedule_secrets (
        schedule TEXT NOT NULL REFERENCES schedules(name),
        name     TEXT NOT NULL,
        value    BLOB NOT NULL,
        PRIMARY KEY (schedule, name)
      );
      CREATE TABLE schedule_runs (
        seq      INTEGER PRIMARY KEY,
        schedule TEXT NOT NULL,
        slot_us  INTEGER NOT NULL,
        job_id   TEXT NOT NULL,
        proto    BLOB NOT NULL
      );
      CREATE INDEX schedule_runs_schedule ON schedule_runs(schedule, seq);
      CREATE TABLE job_webhooks (
        job_id TEXT NOT NULL REFERENCES jobs(id),
        seq    INTEGER NOT NULL,
        value  BLOB NOT NULL,
        PRIMARY KEY (job_id, seq)
      );
      CREATE TABLE webhook_outbox (
        id              TEXT NOT NULL PRIMARY KEY,
        job_id          TEXT NOT NULL,
        target          BLOB NOT NULL,
        body            BLOB NOT NULL,
        attempts        INTEGER NOT NULL,
        next_attempt_us INTEGER NOT NULL,
        last_error      TEXT NOT NULL
      );
    )sql",
    // 6 -> 7: the content store's index (issue 17, coordinator/local_blob_store.cc).
    // A blob's bytes are the file blobs/<2 hex>/<sha256> under the data dir; a
    // row exists only for a complete, verified blob. blob_pins holds the root
    // trees each job's inputs name: GC keeps every blob reachable from one.
    R"sql(
      CREATE TABLE blobs (
        sha256       TEXT NOT NULL PRIMARY KEY,
        size         INTEGER NOT NULL,
        created_us   INTEGER NOT NULL,
        last_used_us INTEGER NOT NULL
      );
      CREATE INDEX blobs_last_used ON blobs(last_used_us);
      CREATE TABLE blob_pins (
        job_id TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (job_id, sha256)
      );
    )sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kSqliteSchemaVersion,
              "kSqliteSchemaVersion must equal the number of migrations");

// Waiting this long for another connection's lock (an operator's sqlite3 shell,
// a backup) beats failing a commit outright.
constexpr int kBusyTimeoutMs = 5000;

std::shared_ptr<spdlog::logger> Log() { return GetLogger("store"); }

using sql::DbPtr;
using sql::Exec;
using sql::QueryInt;
using sql::QueryText;
using sql::ResetOnExit;
using sql::SqliteError;
using sql::Statement;


absl::Status NewerSchemaError(const std::string& path, int64_t version) {
  return absl::FailedPreconditionError(absl::StrCat(
      "store: \"", path, "\" has schema version ", version,
      " but this coordinator knows versions up to ", kSqliteSchemaVersion,
      "; it was written by a newer musafarm, so run that version or restore a backup"));
}

// Thread-compatible, not thread-safe: the coordinator's core loop is its only
// caller (see Store).
class SqliteStore final : public Store {
 public:
  static absl::StatusOr<std::unique_ptr<Store>> Open(const std::string& path,
                                                     std::optional<SecretCipher> cipher);

  absl::Status Commit(const Mutation& m) override;
  absl::StatusOr<std::vector<v1::Job>> LoadJobs() override;
  absl::StatusOr<std::vector<v1::Agent>> LoadAgents() override;
  absl::StatusOr<std::vector<Transition>> LoadTransitions(const std::string& task_id) override;
  absl::StatusOr<std::map<std::string, std::map<std::string, std::string>>> LoadSecrets() override;

  absl::Status InsertJoinToken(const JoinToken& token) override;
  absl::StatusOr<std::vector<JoinToken>> LoadJoinTokens() override;
  absl::StatusOr<JoinToken> LoadJoinToken(const std::string& id) override;
  absl::StatusOr<int64_t> UseJoinToken(const std::string& id, absl::Time now) override;
  absl::Status RecordCertificate(const IssuedCertificate& cert) override;
  absl::StatusOr<std::vector<IssuedCertificate>> LoadCertificates(const std::string& name) override;
  absl::Status InsertRevocation(const Revocation& r) override;
  absl::StatusOr<std::vector<Revocation>> LoadRevocations() override;

  absl::Status InsertApiToken(const ApiToken& token, const AuditEntry& audit) override;
  absl::StatusOr<ApiToken> LoadApiToken(const std::string& id) override;
  absl::StatusOr<std::vector<ApiToken>> LoadApiTokens() override;
  absl::Status RevokeApiToken(const std::string& id, absl::Time when,
                              const AuditEntry& audit) override;
  absl::StatusOr<std::vector<AuditEntry>> LoadAudit(const AuditFilter& filter) override;

  JobArchive& archive() override { return archive_; }
  ScheduleStore& schedules() override { return schedules_; }
  WebhookOutbox& webhooks() override { return webhooks_; }

 private:
  SqliteStore(std::string path, DbPtr db, std::optional<SecretCipher> cipher)
      : path_(std::move(path)),
        db_(std::move(db)),
        cipher_(std::move(cipher)),
        archive_(db_.get(), path_),
        schedules_(db_.get(), path_, cipher_.has_value() ? &*cipher_ : nullptr),
        webhooks_(db_.get(), path_, cipher_.has_value() ? &*cipher_ : nullptr) {}

  absl::Status Configure();
  absl::Status Migrate();
  absl::Status PrepareStatements();
  // Seals the secret rows still in clear (written before secrets were sealed).
  absl::Status SealClearSecrets();
  // The value written to / read from a job_secrets row.
  absl::StatusOr<std::string> Sealed(const std::string& job_id, const std::string& name,
                                     const std::string& value) const;
  absl::StatusOr<std::string> Opened(const std::string& job_id, const std::string& name,
                                     std::string stored) const;
  absl::Status TruncateWal();
  // Upserts one job_secrets row (sealed with a cipher).
  absl::Status WriteSecret(const std::string& job_id, const std::string& name,
                           const std::string& value);

  // Runs `body` in BEGIN IMMEDIATE ... COMMIT, rolling back if either fails.
  // IMMEDIATE takes the write lock up front, so a concurrent writer makes BEGIN
  // wait (busy_timeout) instead of failing the transaction halfway.
  template <typename Body>
  absl::Status InTransaction(Body&& body);

  absl::Status UpsertJob(const v1::Job& job);
  absl::Status UpsertTask(const v1::Task& task);
  absl::Status InsertTransition(const Transition& t);
  absl::Status UpsertAgent(const v1::Agent& agent);
  absl::Status InsertAudit(const AuditEntry& e);

  const std::string path_;
  // Declared before the statements, so it is closed after they are all finalized.
  DbPtr db_;
  const std::optional<SecretCipher> cipher_;  // none: secrets in clear (tests)
  SqliteJobArchive archive_;                  // jobs read on demand, retention
  SqliteScheduleStore schedules_;             // schedules and their runs
  SqliteWebhookOutbox webhooks_;              // notifications still to deliver

  Statement begin_;
  Statement commit_;
  Statement rollback_;
  Statement upsert_job_;
  Statement upsert_task_;
  Statement update_task_;
  Statement insert_transition_;
  Statement upsert_agent_;
  Statement insert_secret_;
  Statement drop_secrets_;
  Statement load_secrets_;
  Statement load_agents_;
  Statement load_transitions_;
  Statement insert_audit_;

  // Reused serialization buffer: Commit runs on every task state change.
  std::string buf_;
};

absl::StatusOr<std::unique_ptr<Store>> SqliteStore::Open(const std::string& path,
                                                         std::optional<SecretCipher> cipher) {
  sqlite3* raw = nullptr;
  // NOMUTEX: the store is used from one thread, so SQLite's per-call locking is waste.
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);  // sqlite3_open_v2 returns a handle to close even when it fails
  if (rc != SQLITE_OK) return SqliteError(db.get(), rc, absl::StrCat("open \"", path, "\""));
  std::unique_ptr<SqliteStore> store(new SqliteStore(path, std::move(db), std::move(cipher)));
  // Most failures past open (not a database, unreadable, locked) only show once
  // the file is read, so each step names the path too.
  MF_RETURN_IF_ERROR(store->Configure());
  MF_RETURN_IF_ERROR(store->Migrate());
  MF_RETURN_IF_ERROR(store->PrepareStatements());
  MF_RETURN_IF_ERROR(store->SealClearSecrets());
  return std::unique_ptr<Store>(std::move(store));
}

absl::StatusOr<std::string> SqliteStore::Sealed(const std::string& job_id, const std::string& name,
                                                const std::string& value) const {
  if (!cipher_.has_value()) return value;
  return cipher_->Seal(value, SecretContext(job_id, name));
}

absl::StatusOr<std::string> SqliteStore::Opened(const std::string& job_id, const std::string& name,
                                                std::string stored) const {
  // A row in clear is one SealClearSecrets() has not reached: only in a store
  // opened without a cipher.
  if (!cipher_.has_value() || !SecretCipher::IsSealed(stored)) return stored;
  absl::StatusOr<std::string> value = cipher_->Open(stored, SecretContext(job_id, name));
  if (!value.ok()) {
    return absl::DataLossError(absl::StrCat("store: secret '", name, "' of job ", job_id, " in \"",
                                            path_, "\": ", value.status().message()));
  }
  return value;
}

absl::Status SqliteStore::SealClearSecrets() {
  if (!cipher_.has_value()) return absl::OkStatus();
  std::vector<std::tuple<std::string, std::string, std::string>> clear;
  {
    Statement& s = load_secrets_;
    ResetOnExit reset(s);
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) {
      if (SecretCipher::IsSealed(s.ColumnBlob(2))) continue;
      clear.emplace_back(s.ColumnText(0), s.ColumnText(1), s.ColumnBlob(2));
    }
    if (rc != SQLITE_DONE) return s.Error(rc, "load secrets");
  }
  if (clear.empty()) return absl::OkStatus();
  const absl::Status sealed = InTransaction([&]() -> absl::Status {
    for (const auto& [job_id, name, value] : clear) {
      MF_RETURN_IF_ERROR(WriteSecret(job_id, name, value));
    }
    return absl::OkStatus();
  });
  if (!sealed.ok()) return sealed;
  // secure_delete zeroed the clear cells; the checkpoint puts the zeroed pages
  // into the database file and empties the WAL.
  Log()->info("{}: sealed {} secret value(s) stored in clear by an older coordinator", path_,
              clear.size());
  return TruncateWal();
}

absl::Status SqliteStore::WriteSecret(const std::string& job_id, const std::string& name,
                                      const std::string& value) {
  MF_ASSIGN_OR_RETURN(std::string stored, Sealed(job_id, name, value));
  Statement& s = insert_secret_;
  ResetOnExit reset(s);
  s.BindText(1, job_id);
  s.BindText(2, name);
  s.BindBlob(3, stored);
  int rc = s.Step();
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("store secrets of job ", job_id));
  return absl::OkStatus();
}

absl::Status SqliteStore::TruncateWal() {
  return Exec(db_.get(), "PRAGMA wal_checkpoint(TRUNCATE)", "checkpoint");
}

absl::Status SqliteStore::Configure() {
  sqlite3* db = db_.get();
  const std::string where = absl::StrCat("open \"", path_, "\"");
  (void)sqlite3_extended_result_codes(db, 1);  // only fails on a bad handle
  (void)sqlite3_busy_timeout(db, kBusyTimeoutMs);

  // Refuse a newer file before changing anything in it (the journal mode below
  // is stored in the file). Migrate() checks again under the write lock.
  MF_ASSIGN_OR_RETURN(int64_t version, QueryInt(db, "PRAGMA user_version", where));
  if (version > kSqliteSchemaVersion) return NewerSchemaError(path_, version);

  // A no-op inside a transaction and unsupported in some builds: read it back.
  MF_RETURN_IF_ERROR(Exec(db, "PRAGMA foreign_keys=ON", where));
  MF_ASSIGN_OR_RETURN(int64_t fk, QueryInt(db, "PRAGMA foreign_keys", where));
  if (fk != 1) {
    return absl::FailedPreconditionError(
        absl::StrCat("store: ", where, ": SQLite refused PRAGMA foreign_keys=ON"));
  }

  // WAL: a commit appends to one file and readers (an operator's sqlite3 shell)
  // do not block it. SQLite answers with the mode it actually chose; in-memory
  // databases (empty file name) stay "memory", which is fine for tests. A file
  // that cannot use WAL (e.g. a network file system without shared memory) is
  // refused rather than silently run with different locking.
  MF_ASSIGN_OR_RETURN(std::string mode, QueryText(db, "PRAGMA journal_mode=WAL", where));
  const char* file = sqlite3_db_filename(db, "main");
  const bool in_memory = file == nullptr || file[0] == '\0';
  if (!in_memory && mode != "wal") {
    return absl::FailedPreconditionError(absl::StrCat(
        "store: ", where, ": cannot use WAL journal mode (SQLite kept \"", mode, "\")"));
  }
  // FULL syncs the WAL on every commit, so a commit survives power loss; NORMAL
  // would only protect against a process crash. The coordinator acknowledges
  // state changes after Commit returns, so it needs FULL.
  MF_RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous=FULL", where));
  // Deleted rows (a finished job's secrets) are overwritten with zeros rather
  // than left in free pages.
  MF_RETURN_IF_ERROR(Exec(db, "PRAGMA secure_delete=ON", where));
  return absl::OkStatus();
}

absl::Status SqliteStore::Migrate() {
  sqlite3* db = db_.get();
  MF_ASSIGN_OR_RETURN(begin_, Statement::Prepare(db, "BEGIN IMMEDIATE", /*persistent=*/true));
  MF_ASSIGN_OR_RETURN(commit_, Statement::Prepare(db, "COMMIT", /*persistent=*/true));
  MF_ASSIGN_OR_RETURN(rollback_, Statement::Prepare(db, "ROLLBACK", /*persistent=*/true));

  return InTransaction([&]() -> absl::Status {
    // Read under the write lock: another process may have migrated meanwhile.
    MF_ASSIGN_OR_RETURN(int64_t version, QueryInt(db, "PRAGMA user_version", "read user_version"));
    if (version > kSqliteSchemaVersion) return NewerSchemaError(path_, version);
    if (version == kSqliteSchemaVersion) return absl::OkStatus();
    Log()->info("migrating {} from schema version {} to {}", path_, version, kSqliteSchemaVersion);
    for (int64_t v = version; v < kSqliteSchemaVersion; ++v) {
      MF_RETURN_IF_ERROR(Exec(db, kMigrations[v],
                              absl::StrCat("migrate \"", path_, "\" to schema version ", v + 1)));
    }
    // PRAGMA takes no bound parameters; the value is our own constant.
    return Exec(db, absl::StrCat("PRAGMA user_version=", kSqliteSchemaVersion).c_str(),
                "set user_version");
  });
}

absl::Status SqliteStore::PrepareStatements() {
  sqlite3* db = db_.get();
  // Every column is rewritten on conflict, so the copied columns never drift
  // from the proto; `seq` is not, so the row keeps its place.
  MF_ASSIGN_OR_RETURN(upsert_job_,
                      Statement::Prepare(db,
                                         "INSERT INTO jobs(id, name, state, created_us, ended_us, "
                                         "proto) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
                                         "ON CONFLICT(id) DO UPDATE SET name=excluded.name, "
                                         "state=excluded.state, created_us=excluded.created_us, "
                                         "ended_us=excluded.ended_us, proto=excluded.proto",
                                         /*persistent=*/true));
  MF_ASSIGN_OR_RETURN(upsert_task_,
                      Statement::Prepare(db,
                                         "INSERT INTO tasks(id, job_id, state, attempt_id, agent, "
                                         "proto) VALUES(?1, ?2, ?3, ?4, ?5, ?6) "
                                         "ON CONFLICT(id) DO UPDATE SET job_id=excluded.job_id, "
                                         "state=excluded.state, attempt_id=excluded.attempt_id, "
                                         "agent=excluded.agent, proto=excluded.proto",
                                         /*persistent=*/true));
  // A task's row changes at every transition of its life (assigned, started,
  // ended) and is inserted once: an UPDATE by id writes the row alone, where
  // the upsert above first probed for the insert and then also rewrote the
  // job_id index entry (a task never changes job). UpsertTask tries it first.
  MF_ASSIGN_OR_RETURN(update_task_,
                      Statement::Prepare(db,
                                         "UPDATE tasks SET state=?2, attempt_id=?3, agent=?4, "
                                         "proto=?5 WHERE id=?1",
                                         /*persistent=*/true));
  MF_ASSIGN_OR_RETURN(insert_transition_,
                      Statement::Prepare(db,
                                         "INSERT INTO transitions(task_id, attempt_id, from_state, "
                                         "to_state, at_us, reason) VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
                                         /*persistent=*/true));
  MF_ASSIGN_OR_RETURN(upsert_agent_,
                      Statement::Prepare(db,
                                         "INSERT INTO agents(name, proto) VALUES(?1, ?2) "
                                         "ON CONFLICT(name) DO UPDATE SET proto=excluded.proto",
                                         /*persistent=*/true));
  MF_ASSIGN_OR_RETURN(insert_secret_,
                      Statement::Prepare(db,
                                         "INSERT OR REPLACE INTO job_secrets(job_id, name, value) "
                                         "VALUES(?1, ?2, ?3)",
                                         /*persistent=*/false));
  MF_ASSIGN_OR_RETURN(drop_secrets_,
                      Statement::Prepare(db, "DELETE FROM job_secrets WHERE job_id = ?1",
                                         /*persistent=*/false));
  MF_ASSIGN_OR_RETURN(load_secrets_,
                      Statement::Prepare(db, "SELECT job_id, name, value FROM job_secrets",
                                         /*persistent=*/false));
  MF_ASSIGN_OR_RETURN(load_agents_, Statement::Prepare(db, "SELECT proto FROM agents ORDER BY name",
                                                       /*persistent=*/true));
  MF_ASSIGN_OR_RETURN(load_transitions_,
                      Statement::Prepare(db,
                                         "SELECT attempt_id, from_state, to_state, at_us, reason "
                                         "FROM transitions WHERE task_id = ?1 ORDER BY seq",
                                         /*persistent=*/true));
  MF_RETURN_IF_ERROR(archive_.Prepare());
  MF_ASSIGN_OR_RETURN(insert_audit_,
                      Statement::Prepare(db,
                                         "INSERT INTO audit(at_us, user, role, action, target, "
                                         "peer, outcome) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                                         /*persistent=*/true));
  return absl::OkStatus();
}

template <typename Body>
absl::Status SqliteStore::InTransaction(Body&& body) {
  {
    ResetOnExit reset(begin_);
    int rc = begin_.Step();
    if (rc != SQLITE_DONE) return begin_.Error(rc, "begin transaction");
  }
  absl::Status status = body();
  if (status.ok()) {
    ResetOnExit reset(commit_);
    int rc = commit_.Step();
    if (rc == SQLITE_DONE) return absl::OkStatus();
    status = commit_.Error(rc, "commit");
  }
  // Some errors (I/O, disk full) have already rolled the transaction back; a
  // second ROLLBACK would fail with "no transaction is active".
  if (!sqlite3_get_autocommit(db_.get())) {
    ResetOnExit reset(rollback_);
    int rc = rollback_.Step();
    if (rc != SQLITE_DONE) {
      // The connection stays inside the failed transaction, so every later
      // Commit fails at BEGIN: nothing half-done can become durable.
      Log()->error("{}: rollback after \"{}\" failed: {}", path_, std::string(status.message()),
                   sqlite3_errmsg(db_.get()));
    }
  }
  return status;
}

absl::Status SqliteStore::Commit(const Mutation& m) {
  if (m.empty()) return absl::OkStatus();
  MF_RETURN_IF_ERROR(ValidateMutation(m));
  // Jobs before tasks before transitions: a new job and its tasks arrive in one
  // mutation, and the foreign keys are checked statement by statement.
  absl::Status status = InTransaction([&]() -> absl::Status {
    for (const v1::Job& job : m.jobs) MF_RETURN_IF_ERROR(UpsertJob(job));
    for (const v1::Task& task : m.tasks) MF_RETURN_IF_ERROR(UpsertTask(task));
    for (const Transition& t : m.transitions) MF_RETURN_IF_ERROR(InsertTransition(t));
    for (const v1::Agent& agent : m.agents) MF_RETURN_IF_ERROR(UpsertAgent(agent));
    for (const auto& [job_id, secrets] : m.job_secrets) {
      for (const auto& [name, value] : secrets) MF_RETURN_IF_ERROR(WriteSecret(job_id, name, value));
    }
    for (const std::string& job_id : m.drop_secrets) {
      Statement& s = drop_secrets_;
      ResetOnExit reset(s);
      s.BindText(1, job_id);
      int rc = s.Step();
      if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("drop secrets of job ", job_id));
    }
    for (const AuditEntry& e : m.audit) MF_RETURN_IF_ERROR(InsertAudit(e));
    for (const ScheduleFire& f : m.schedule_fires) MF_RETURN_IF_ERROR(schedules_.ApplyFire(f));
    for (const auto& [job_id, hooks] : m.job_webhooks) {
      MF_RETURN_IF_ERROR(webhooks_.WriteJobWebhooks(job_id, hooks));
    }
    for (const WebhookDelivery& d : m.deliveries) MF_RETURN_IF_ERROR(webhooks_.Enqueue(d));
    for (const std::string& job_id : m.drop_webhooks) {
      MF_RETURN_IF_ERROR(webhooks_.DropJobWebhooks(job_id));
    }
    return absl::OkStatus();
  });
  if (!status.ok() || m.drop_secrets.empty()) return status;
  // secure_delete zeroes the pages in the database, but the WAL still holds the
  // frames written before the delete; a truncating checkpoint copies the zeroed
  // pages back and empties the WAL. Only when a job with secrets ends.
  if (absl::Status cp = TruncateWal(); !cp.ok()) {
    Log()->warn("{}: {}", path_, std::string(cp.message()));
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::UpsertJob(const v1::Job& job) {
  // Tasks live in their own rows. Copying the job to drop them costs a copy of
  // its tasks, but jobs are written only when submitted and when they end.
  v1::Job header = job;
  header.clear_tasks();
  if (!header.SerializeToString(&buf_)) {
    return absl::InvalidArgumentError(absl::StrCat("store: cannot serialize job ", job.id()));
  }
  Statement& s = upsert_job_;
  ResetOnExit reset(s);
  s.BindText(1, job.id());
  s.BindText(2, job.name());
  s.BindInt64(3, job.state());
  s.BindInt64(4, job.created_us());
  s.BindInt64(5, job.ended_us());
  s.BindBlob(6, buf_);
  int rc = s.Step();
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("insert job ", job.id()));
  return archive_.OnJobWritten(header);
}

absl::Status SqliteStore::UpsertTask(const v1::Task& task) {
  if (!task.SerializeToString(&buf_)) {
    return absl::InvalidArgumentError(absl::StrCat("store: cannot serialize task ", task.id()));
  }
  {
    Statement& u = update_task_;
    ResetOnExit reset(u);
    u.BindText(1, task.id());
    u.BindInt64(2, task.state());
    u.BindInt64(3, static_cast<int64_t>(task.attempt_id()));  // bit-for-bit; see sqlite_store.h
    u.BindText(4, task.agent());
    u.BindBlob(5, buf_);
    int rc = u.Step();
    if (rc != SQLITE_DONE) return u.Error(rc, absl::StrCat("update task ", task.id()));
    if (sqlite3_changes(db_.get()) > 0) return absl::OkStatus();
  }
  // A new task (its job's submission, a rerun): inserted.
  Statement& s = upsert_task_;
  ResetOnExit reset(s);
  s.BindText(1, task.id());
  s.BindText(2, task.job_id());
  s.BindInt64(3, task.state());
  s.BindInt64(4, static_cast<int64_t>(task.attempt_id()));
  s.BindText(5, task.agent());
  s.BindBlob(6, buf_);
  int rc = s.Step();
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("insert task ", task.id()));
  return absl::OkStatus();
}

absl::Status SqliteStore::InsertTransition(const Transition& t) {
  Statement& s = insert_transition_;
  ResetOnExit reset(s);
  s.BindText(1, t.task_id);
  s.BindInt64(2, static_cast<int64_t>(t.attempt_id));
  s.BindInt64(3, t.from);
  s.BindInt64(4, t.to);
  s.BindInt64(5, t.at_us);
  s.BindText(6, t.reason);
  int rc = s.Step();
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("insert transition of task ", t.task_id));
  return absl::OkStatus();
}

absl::Status SqliteStore::UpsertAgent(const v1::Agent& agent) {
  if (!agent.SerializeToString(&buf_)) {
    return absl::InvalidArgumentError(absl::StrCat("store: cannot serialize agent ", agent.name()));
  }
  Statement& s = upsert_agent_;
  ResetOnExit reset(s);
  s.BindText(1, agent.name());
  s.BindBlob(2, buf_);
  int rc = s.Step();
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("insert agent ", agent.name()));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::Job>> SqliteStore::LoadJobs() { return archive_.LoadAllJobs(); }

absl::StatusOr<std::map<std::string, std::map<std::string, std::string>>>
SqliteStore::LoadSecrets() {
  std::map<std::string, std::map<std::string, std::string>> out;
  Statement& s = load_secrets_;
  ResetOnExit reset(s);
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    std::string job_id(s.ColumnText(0));
    std::string name(s.ColumnText(1));
    MF_ASSIGN_OR_RETURN(std::string value, Opened(job_id, name, std::string(s.ColumnBlob(2))));
    out[job_id][name] = std::move(value);
  }
  if (rc != SQLITE_DONE) return s.Error(rc, "load secrets");
  return out;
}

absl::StatusOr<std::vector<v1::Agent>> SqliteStore::LoadAgents() {
  std::vector<v1::Agent> agents;
  Statement& s = load_agents_;
  ResetOnExit reset(s);
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    absl::string_view blob = s.ColumnBlob(0);
    if (!agents.emplace_back().ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      return absl::DataLossError("store: an agent row has a corrupt proto");
    }
  }
  if (rc != SQLITE_DONE) return s.Error(rc, "load agents");
  return agents;
}

absl::StatusOr<std::vector<Transition>> SqliteStore::LoadTransitions(const std::string& task_id) {
  std::vector<Transition> out;
  Statement& s = load_transitions_;
  ResetOnExit reset(s);
  s.BindText(1, task_id);
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    Transition& t = out.emplace_back();
    t.task_id = task_id;
    t.attempt_id = static_cast<uint64_t>(s.ColumnInt64(0));
    // Proto3 enums are open: a value from a newer build passes through as is.
    t.from = static_cast<v1::TaskState>(s.ColumnInt64(1));
    t.to = static_cast<v1::TaskState>(s.ColumnInt64(2));
    t.at_us = s.ColumnInt64(3);
    t.reason = std::string(s.ColumnText(4));
  }
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("load transitions of task ", task_id));
  return out;
}

// --- enrolment. Rare calls (an enrolment, a renewal, a revocation): their
// statements are prepared at each use rather than kept.

constexpr const char* kJoinTokenColumns =
    "id, salt, secret_hash, uses_left, expire_us, created_us, description";

JoinToken ReadJoinToken(const Statement& s) {
  JoinToken t;
  t.id = std::string(s.ColumnText(0));
  t.salt = std::string(s.ColumnText(1));
  t.secret_hash = std::string(s.ColumnText(2));
  t.uses_left = s.ColumnInt64(3);
  t.expire_time = absl::FromUnixMicros(s.ColumnInt64(4));
  t.created_at = absl::FromUnixMicros(s.ColumnInt64(5));
  t.description = std::string(s.ColumnText(6));
  return t;
}

absl::Status SqliteStore::InsertJoinToken(const JoinToken& token) {
  if (token.id.empty()) return absl::InvalidArgumentError("store: join token with an empty id");
  MF_ASSIGN_OR_RETURN(
      Statement s,
      Statement::Prepare(db_.get(),
                         absl::StrCat("INSERT INTO join_tokens(", kJoinTokenColumns,
                                      ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                         /*persistent=*/false));
  s.BindText(1, token.id);
  s.BindText(2, token.salt);
  s.BindText(3, token.secret_hash);
  s.BindInt64(4, token.uses_left);
  s.BindInt64(5, absl::ToUnixMicros(token.expire_time));
  s.BindInt64(6, absl::ToUnixMicros(token.created_at));
  s.BindText(7, token.description);
  int rc = s.Step();
  if ((rc & 0xff) == SQLITE_CONSTRAINT) {
    return absl::AlreadyExistsError(absl::StrCat("store: join token ", token.id, " exists"));
  }
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("insert join token ", token.id));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<JoinToken>> SqliteStore::LoadJoinTokens() {
  MF_ASSIGN_OR_RETURN(Statement s,
                      Statement::Prepare(db_.get(),
                                         absl::StrCat("SELECT ", kJoinTokenColumns,
                                                      " FROM join_tokens ORDER BY created_us, id"),
                                         /*persistent=*/false));
  std::vector<JoinToken> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadJoinToken(s));
  if (rc != SQLITE_DONE) return s.Error(rc, "load join tokens");
  return out;
}

absl::StatusOr<JoinToken> SqliteStore::LoadJoinToken(const std::string& id) {
  MF_ASSIGN_OR_RETURN(
      Statement s,
      Statement::Prepare(db_.get(),
                         absl::StrCat("SELECT ", kJoinTokenColumns, " FROM join_tokens WHERE id = ?1"),
                         /*persistent=*/false));
  s.BindText(1, id);
  int rc = s.Step();
  if (rc == SQLITE_ROW) return ReadJoinToken(s);
  if (rc == SQLITE_DONE) return absl::NotFoundError(absl::StrCat("no join token ", id));
  return s.Error(rc, absl::StrCat("load join token ", id));
}

absl::StatusOr<int64_t> SqliteStore::UseJoinToken(const std::string& id, absl::Time now) {
  // One statement: the check and the decrement cannot be separated by another
  // writer (`join-token create` runs in another process).
  MF_ASSIGN_OR_RETURN(Statement s,
                      Statement::Prepare(db_.get(),
                                         "UPDATE join_tokens SET uses_left = uses_left - 1 "
                                         "WHERE id = ?1 AND uses_left > 0 AND expire_us > ?2 "
                                         "RETURNING uses_left",
                                         /*persistent=*/false));
  s.BindText(1, id);
  s.BindInt64(2, absl::ToUnixMicros(now));
  int rc = s.Step();
  if (rc == SQLITE_ROW) {
    const int64_t left = s.ColumnInt64(0);
    rc = s.Step();  // completes the UPDATE
    if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("use join token ", id));
    return left;
  }
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("use join token ", id));
  MF_ASSIGN_OR_RETURN(JoinToken t, LoadJoinToken(id));
  if (t.uses_left <= 0) {
    return absl::FailedPreconditionError(absl::StrCat("join token ", id, " is used up"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("join token ", id, " expired at ",
                   FormatUtc(t.expire_time)));
}

absl::Status SqliteStore::RecordCertificate(const IssuedCertificate& cert) {
  MF_ASSIGN_OR_RETURN(Statement s,
                      Statement::Prepare(db_.get(),
                                         "INSERT OR REPLACE INTO issued_certificates(serial, name, "
                                         "fingerprint, not_after_us, issued_us) "
                                         "VALUES(?1, ?2, ?3, ?4, ?5)",
                                         /*persistent=*/false));
  s.BindText(1, cert.serial_hex);
  s.BindText(2, cert.name);
  s.BindText(3, cert.fingerprint);
  s.BindInt64(4, absl::ToUnixMicros(cert.not_after));
  s.BindInt64(5, absl::ToUnixMicros(cert.issued_at));
  int rc = s.Step();
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("record certificate ", cert.serial_hex));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<IssuedCertificate>> SqliteStore::LoadCertificates(
    const std::string& name) {
  MF_ASSIGN_OR_RETURN(Statement s,
                      Statement::Prepare(db_.get(),
                                         "SELECT serial, name, fingerprint, not_after_us, issued_us "
                                         "FROM issued_certificates WHERE name = ?1 "
                                         "ORDER BY issued_us, serial",
                                         /*persistent=*/false));
  s.BindText(1, name);
  std::vector<IssuedCertificate> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    IssuedCertificate& c = out.emplace_back();
    c.serial_hex = std::string(s.ColumnText(0));
    c.name = std::string(s.ColumnText(1));
    c.fingerprint = std::string(s.ColumnText(2));
    c.not_after = absl::FromUnixMicros(s.ColumnInt64(3));
    c.issued_at = absl::FromUnixMicros(s.ColumnInt64(4));
  }
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("load certificates of ", name));
  return out;
}

absl::Status SqliteStore::InsertRevocation(const Revocation& r) {
  if (r.name.empty()) return absl::InvalidArgumentError("store: revocation of an empty name");
  MF_ASSIGN_OR_RETURN(Statement s,
                      Statement::Prepare(db_.get(),
                                         "INSERT OR REPLACE INTO revocations(name, revoked_us, "
                                         "serials) VALUES(?1, ?2, ?3)",
                                         /*persistent=*/false));
  const std::string serials = absl::StrJoin(r.serials, ",");
  s.BindText(1, r.name);
  s.BindInt64(2, absl::ToUnixMicros(r.revoked_at));
  s.BindText(3, serials);
  int rc = s.Step();
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("revoke ", r.name));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<Revocation>> SqliteStore::LoadRevocations() {
  MF_ASSIGN_OR_RETURN(Statement s,
                      Statement::Prepare(db_.get(),
                                         "SELECT name, revoked_us, serials FROM revocations "
                                         "ORDER BY name",
                                         /*persistent=*/false));
  std::vector<Revocation> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    Revocation& r = out.emplace_back();
    r.name = std::string(s.ColumnText(0));
    r.revoked_at = absl::FromUnixMicros(s.ColumnInt64(1));
    r.serials = absl::StrSplit(s.ColumnText(2), ',', absl::SkipEmpty());
  }
  if (rc != SQLITE_DONE) return s.Error(rc, "load revocations");
  return out;
}

// --- users. A token lookup runs at every authenticated call (no cache, so a
// revocation counts at once): it is one primary-key SELECT.

absl::Status SqliteStore::InsertAudit(const AuditEntry& e) {
  Statement& s = insert_audit_;
  ResetOnExit reset(s);
  s.BindInt64(1, absl::ToUnixMicros(e.time));
  s.BindText(2, e.user);
  s.BindText(3, e.role);
  s.BindText(4, e.action);
  s.BindText(5, e.target);
  s.BindText(6, e.peer);
  s.BindText(7, e.outcome);
  int rc = s.Step();
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("append audit line ", e.action));
  return absl::OkStatus();
}

constexpr const char* kApiTokenColumns =
    "id, user, role, salt, secret_hash, created_us, created_by, expire_us, revoked_us";

// 0 in the table: never (expiry) / not yet (revocation).
int64_t OptionalMicros(absl::Time t) {
  return t == absl::InfiniteFuture() ? 0 : absl::ToUnixMicros(t);
}
absl::Time FromOptionalMicros(int64_t us) {
  return us == 0 ? absl::InfiniteFuture() : absl::FromUnixMicros(us);
}

ApiToken ReadApiToken(const Statement& s) {
  ApiToken t;
  t.id = std::string(s.ColumnText(0));
  t.user = std::string(s.ColumnText(1));
  t.role = std::string(s.ColumnText(2));
  t.salt = std::string(s.ColumnText(3));
  t.secret_hash = std::string(s.ColumnText(4));
  t.created_at = absl::FromUnixMicros(s.ColumnInt64(5));
  t.created_by = std::string(s.ColumnText(6));
  t.expire_time = FromOptionalMicros(s.ColumnInt64(7));
  t.revoked_at = FromOptionalMicros(s.ColumnInt64(8));
  return t;
}

absl::Status SqliteStore::InsertApiToken(const ApiToken& token, const AuditEntry& audit) {
  if (token.id.empty()) return absl::InvalidArgumentError("store: API token with an empty id");
  MF_ASSIGN_OR_RETURN(
      Statement s,
      Statement::Prepare(db_.get(),
                         absl::StrCat("INSERT INTO api_tokens(", kApiTokenColumns,
                                      ") VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"),
                         /*persistent=*/false));
  return InTransaction([&]() -> absl::Status {
    s.BindText(1, token.id);
    s.BindText(2, token.user);
    s.BindText(3, token.role);
    s.BindText(4, token.salt);
    s.BindText(5, token.secret_hash);
    s.BindInt64(6, absl::ToUnixMicros(token.created_at));
    s.BindText(7, token.created_by);
    s.BindInt64(8, OptionalMicros(token.expire_time));
    s.BindInt64(9, OptionalMicros(token.revoked_at));
    int rc = s.Step();
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
      return absl::AlreadyExistsError(absl::StrCat("store: API token ", token.id, " exists"));
    }
    if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("insert API token ", token.id));
    return InsertAudit(audit);
  });
}

absl::StatusOr<ApiToken> SqliteStore::LoadApiToken(const std::string& id) {
  MF_ASSIGN_OR_RETURN(
      Statement s,
      Statement::Prepare(db_.get(),
                         absl::StrCat("SELECT ", kApiTokenColumns, " FROM api_tokens WHERE id = ?1"),
                         /*persistent=*/false));
  s.BindText(1, id);
  int rc = s.Step();
  if (rc == SQLITE_ROW) return ReadApiToken(s);
  if (rc == SQLITE_DONE) return absl::NotFoundError(absl::StrCat("no API token ", id));
  return s.Error(rc, absl::StrCat("load API token ", id));
}

absl::StatusOr<std::vector<ApiToken>> SqliteStore::LoadApiTokens() {
  MF_ASSIGN_OR_RETURN(Statement s,
                      Statement::Prepare(db_.get(),
                                         absl::StrCat("SELECT ", kApiTokenColumns,
                                                      " FROM api_tokens ORDER BY created_us, id"),
                                         /*persistent=*/false));
  std::vector<ApiToken> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.push_back(ReadApiToken(s));
  if (rc != SQLITE_DONE) return s.Error(rc, "load API tokens");
  return out;
}

absl::Status SqliteStore::RevokeApiToken(const std::string& id, absl::Time when,
                                         const AuditEntry& audit) {
  MF_ASSIGN_OR_RETURN(Statement s,
                      Statement::Prepare(db_.get(),
                                         "UPDATE api_tokens SET revoked_us = "
                                         "CASE revoked_us WHEN 0 THEN ?2 ELSE revoked_us END "
                                         "WHERE id = ?1",
                                         /*persistent=*/false));
  return InTransaction([&]() -> absl::Status {
    s.BindText(1, id);
    s.BindInt64(2, absl::ToUnixMicros(when));
    int rc = s.Step();
    if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("revoke API token ", id));
    if (sqlite3_changes(db_.get()) == 0) {
      return absl::NotFoundError(absl::StrCat("no API token ", id));
    }
    return InsertAudit(audit);
  });
}

absl::StatusOr<std::vector<AuditEntry>> SqliteStore::LoadAudit(const AuditFilter& filter) {
  // The newest `limit` matching lines, returned oldest first.
  MF_ASSIGN_OR_RETURN(
      Statement s,
      Statement::Prepare(db_.get(),
                         "SELECT seq, at_us, user, role, action, target, peer, outcome FROM ("
                         "SELECT * FROM audit WHERE (?1 = '' OR user = ?1) AND at_us >= ?2 "
                         "ORDER BY seq DESC LIMIT ?3) ORDER BY seq",
                         /*persistent=*/false));
  s.BindText(1, filter.user);
  s.BindInt64(2, filter.since == absl::InfinitePast() ? std::numeric_limits<int64_t>::min()
                                                      : absl::ToUnixMicros(filter.since));
  s.BindInt64(3, filter.limit <= 0 ? -1 : filter.limit);
  std::vector<AuditEntry> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    AuditEntry& e = out.emplace_back();
    e.seq = s.ColumnInt64(0);
    e.time = absl::FromUnixMicros(s.ColumnInt64(1));
    e.user = std::string(s.ColumnText(2));
    e.role = std::string(s.ColumnText(3));
    e.action = std::string(s.ColumnText(4));
    e.target = std::string(s.ColumnText(5));
    e.peer = std::string(s.ColumnText(6));
    e.outcome = std::string(s.ColumnText(7));
  }
  if (rc != SQLITE_DONE) return s.Error(rc, "load audit log");
  return out;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  return SqliteStore::Open(path, std::nullopt);
}

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                       const SecretCipher& cipher) {
  return SqliteStore::Open(path, cipher);
}

}  // namespace musafarm::coordinator
