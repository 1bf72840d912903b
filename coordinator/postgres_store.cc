#include "coordinator/postgres_store.h"

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/pg_connection.h"
#include "coordinator/postgres_job_archive.h"
#include "coordinator/postgres_schedule_store.h"
#include "coordinator/postgres_webhook_outbox.h"
#include "coordinator/secret_cipher.h"

namespace musafarm::coordinator {
namespace {

using pg::Params;
using pg::Query;
using pg::Result;

// kMigrations[i] upgrades a database from version i to i + 1, inside the
// transaction that also records the new version. Append only, as SQLite's.
constexpr const char* kMigrations[] = {
    // 0 -> 1: the tables of SQLite versions 1 to 6 (postgres_store.h).
    R"sql(
      CREATE TABLE jobs (
        seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id           text NOT NULL UNIQUE,
        name         text NOT NULL,
        state        integer NOT NULL,
        created_us   bigint NOT NULL,
        ended_us     bigint NOT NULL,
        submitter    text NOT NULL,
        stored_bytes bigint NOT NULL,
        retention_s  bigint NOT NULL,
        proto        bytea NOT NULL
      );
      CREATE INDEX jobs_state ON jobs(state);
      CREATE INDEX jobs_ended ON jobs(ended_us);
      CREATE TABLE tasks (
        seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id         text NOT NULL UNIQUE,
        job_id     text NOT NULL REFERENCES jobs(id),
        state      integer NOT NULL,
        attempt_id bigint NOT NULL,
        agent      text NOT NULL,
        proto      bytea NOT NULL
      );
      CREATE INDEX tasks_job_id ON tasks(job_id);
      CREATE TABLE transitions (
        seq        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        task_id    text NOT NULL REFERENCES tasks(id),
        attempt_id bigint NOT NULL,
        from_state integer NOT NULL,
        to_state   integer NOT NULL,
        at_us      bigint NOT NULL,
        reason     text NOT NULL
      );
      CREATE INDEX transitions_task_id ON transitions(task_id, seq);
      CREATE TABLE agents (
        name  text NOT NULL PRIMARY KEY,
        proto bytea NOT NULL
      );
      CREATE TABLE job_secrets (
        job_id text NOT NULL REFERENCES jobs(id),
        name   text NOT NULL,
        value  bytea NOT NULL,
        PRIMARY KEY (job_id, name)
      );
      CREATE TABLE join_tokens (
        id          text NOT NULL PRIMARY KEY,
        salt        text NOT NULL,
        secret_hash text NOT NULL,
        uses_left   bigint NOT NULL,
        expire_us   bigint NOT NULL,
        created_us  bigint NOT NULL,
        description text NOT NULL
      );
      CREATE TABLE issued_certificates (
        serial       text NOT NULL PRIMARY KEY,
        name         text NOT NULL,
        fingerprint  text NOT NULL,
        not_after_us bigint NOT NULL,
        issued_us    bigint NOT NULL
      );
      CREATE INDEX issued_certificates_name ON issued_certificates(name);
      CREATE TABLE revocations (
        name       text NOT NULL PRIMARY KEY,
        revoked_us bigint NOT NULL,
        serials    text NOT NULL
      );
      CREATE TABLE api_tokens (
        id          text NOT NULL PRIMARY KEY,
        username    text NOT NULL,
        role        text NOT NULL,
        salt        text NOT NULL,
        secret_hash text NOT NULL,
        created_us  bigint NOT NULL,
        created_by  text NOT NULL,
        expire_us   bigint NOT NULL,
        revoked_us  bigint NOT NULL
      );
      CREATE INDEX api_tokens_username ON api_tokens(username);
      CREATE TABLE audit (
        seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at_us    bigint NOT NULL,
        username text NOT NULL,
        role     text NOT NULL,
        action   text NOT NULL,
        target   text NOT NULL,
        peer     text NOT NULL,
        outcome  text NOT NULL
      );
      CREATE INDEX audit_username ON audit(username, seq);
      CREATE FUNCTION musafarm_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'integrity_constraint_violation';
        END $$;
      CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit
        FOR EACH ROW EXECUTE FUNCTION musafarm_audit_append_only();
      CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit
        FOR EACH STATEMENT EXECUTE FUNCTION musafarm_audit_append_only();
      CREATE TABLE job_images (
        job_id text NOT NULL REFERENCES jobs(id),
        image  text NOT NULL,
        PRIMARY KEY (job_id, image)
      );
      CREATE INDEX job_images_image ON job_images(image);
      CREATE TABLE image_outbox (
        seq   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        image text NOT NULL UNIQUE
      );
      CREATE TABLE counters (name text NOT NULL PRIMARY KEY, value bigint NOT NULL);
      CREATE TABLE schedules (
        name         text NOT NULL PRIMARY KEY,
        paused       boolean NOT NULL,
        next_fire_us bigint NOT NULL,
        proto        bytea NOT NULL
      );
      CREATE TABLE schedule_secrets (
        schedule text NOT NULL REFERENCES schedules(name),
        name     text NOT NULL,
        value    bytea NOT NULL,
        PRIMARY KEY (schedule, name)
      );
      CREATE TABLE schedule_runs (
        seq      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        schedule text NOT NULL,
        slot_us  bigint NOT NULL,
        job_id   text NOT NULL,
        proto    bytea NOT NULL
      );
      CREATE INDEX schedule_runs_schedule ON schedule_runs(schedule, seq);
      CREATE TABLE job_webhooks (
        job_id text NOT NULL REFERENCES jobs(id),
        seq    bigint NOT NULL,
        value  bytea NOT NULL,
        PRIMARY KEY (job_id, seq)
      );
      CREATE TABLE webhook_outbox (
        id              text NOT NULL PRIMARY KEY,
        job_id          text NOT NULL,
        target          bytea NOT NULL,
        body            bytea NOT NULL,
        attempts        integer NOT NULL,
        next_attempt_us bigint NOT NULL,
        last_error      text NOT NULL
      );
      CREATE FUNCTION musafarm_require_row(n bigint, what text) RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
          IF n = 0 THEN RAISE EXCEPTION '%', what USING ERRCODE = 'no_data_found'; END IF;
        END $$;
    )sql",
    // 1 -> 2: leadership (coordinator/leadership.h). One row: the leader
    // epoch, bumped by each coordinator that wins the advisory lock, and who
    // that is. coordinators: one row per coordinator seen (standbys refresh
    // theirs), for `musafarm coordinators`. musafarm_fence(epoch) is the
    // fence every write transaction of an active coordinator runs first
    // (pg::Connection::SetFence): it share-locks the row while it still holds
    // that epoch, so it waits for a successor's bump in flight and then finds
    // the row changed; SQLSTATE MF001 says "deposed".
    R"sql(
      CREATE TABLE leadership (
        one         boolean NOT NULL PRIMARY KEY DEFAULT true CHECK (one),
        epoch       bigint NOT NULL,
        address     text NOT NULL,
        coordinator text NOT NULL,
        since_us    bigint NOT NULL
      );
      INSERT INTO leadership(epoch, address, coordinator, since_us) VALUES (0, '', '', 0);
      CREATE TABLE coordinators (
        id           text NOT NULL PRIMARY KEY,
        address      text NOT NULL,
        last_seen_us bigint NOT NULL
      );
      CREATE FUNCTION musafarm_fence(e bigint) RETURNS void LANGUAGE plpgsql AS $$
        DECLARE
          now_epoch bigint;
        BEGIN
          PERFORM 1 FROM leadership WHERE epoch = e FOR SHARE;
          IF NOT FOUND THEN
            SELECT epoch INTO now_epoch FROM leadership;
            RAISE EXCEPTION 'deposed: epoch % is no longer the leader''s (now %)', e, now_epoch
              USING ERRCODE = 'MF001';
          END IF;
        END $$;
    )sql",
    // 2 -> 3: task logs, artifacts and the content store (postgres_log_store.h,
    // postgres_blob_store.h), so that nothing of a farm lives on one
    // coordinator's disk.
    R"sql(
      CREATE TABLE log_chunks (
        task_id    text NOT NULL,
        attempt_id bigint NOT NULL,
        artifact   text NOT NULL,
        off        bigint NOT NULL,
        bytes      bytea NOT NULL,
        PRIMARY KEY (task_id, attempt_id, artifact, off)
      );
      CREATE TABLE blobs (
        sha256       text NOT NULL PRIMARY KEY,
        size         bigint NOT NULL,
        created_us   bigint NOT NULL,
        last_used_us bigint NOT NULL,
        complete     boolean NOT NULL
      );
      CREATE INDEX blobs_last_used ON blobs(last_used_us);
      CREATE TABLE blob_chunks (
        sha256 text NOT NULL REFERENCES blobs(sha256) ON DELETE CASCADE,
        off    bigint NOT NULL,
        bytes  bytea NOT NULL,
        PRIMARY KEY (sha256, off)
      );
      CREATE TABLE blob_pins (
        job_id text NOT NULL,
        sha256 text NOT NULL,
        PRIMARY KEY (job_id, sha256)
      );
    )sql",
};
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) == kPostgresSchemaVersion,
              "kPostgresSchemaVersion must equal the number of migrations");

// Any constant: the advisory lock key under which coordinators migrate.
constexpr int64_t kMigrationLockKey = 0x6d7573616661726d;  // "musafarm"

std::shared_ptr<spdlog::logger> Log() { return GetLogger("store"); }

// Every column is rewritten on conflict, so the copied columns never drift
// from the proto; `seq` is not, so the row keeps its place.
constexpr Query kUpsertJob{
    "store_upsert_job",
    "INSERT INTO jobs(id, name, state, created_us, ended_us, submitter, stored_bytes, "
    "retention_s, proto) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT(id) DO UPDATE "
    "SET name = excluded.name, state = excluded.state, created_us = excluded.created_us, "
    "ended_us = excluded.ended_us, submitter = excluded.submitter, "
    "stored_bytes = excluded.stored_bytes, retention_s = excluded.retention_s, "
    "proto = excluded.proto"};
constexpr Query kInsertImage{"store_insert_image",
                             "INSERT INTO job_images(job_id, image) VALUES($1, $2) "
                             "ON CONFLICT DO NOTHING"};
constexpr Query kUpsertTask{
    "store_upsert_task",
    "INSERT INTO tasks(id, job_id, state, attempt_id, agent, proto) VALUES($1, $2, $3, $4, $5, $6) "
    "ON CONFLICT(id) DO UPDATE SET job_id = excluded.job_id, state = excluded.state, "
    "attempt_id = excluded.attempt_id, agent = excluded.agent, proto = excluded.proto"};
constexpr Query kInsertTransition{
    "store_insert_transition",
    "INSERT INTO transitions(task_id, attempt_id, from_state, to_state, at_us, reason) "
    "VALUES($1, $2, $3, $4, $5, $6)"};
constexpr Query kUpsertAgent{"store_upsert_agent",
                             "INSERT INTO agents(name, proto) VALUES($1, $2) "
                             "ON CONFLICT(name) DO UPDATE SET proto = excluded.proto"};
constexpr Query kPutSecret{"store_put_secret",
                           "INSERT INTO job_secrets(job_id, name, value) VALUES($1, $2, $3) "
                           "ON CONFLICT(job_id, name) DO UPDATE SET value = excluded.value"};
constexpr Query kDropSecrets{"store_drop_secrets", "DELETE FROM job_secrets WHERE job_id = $1"};
constexpr Query kLoadSecrets{"store_load_secrets", "SELECT job_id, name, value FROM job_secrets"};
constexpr Query kLoadAgents{"store_load_agents", "SELECT proto FROM agents ORDER BY name"};
constexpr Query kLoadTransitions{"store_load_transitions",
                                 "SELECT attempt_id, from_state, to_state, at_us, reason "
                                 "FROM transitions WHERE task_id = $1 ORDER BY seq"};
constexpr Query kInsertAudit{"store_insert_audit",
                             "INSERT INTO audit(at_us, username, role, action, target, peer, "
                             "outcome) VALUES($1, $2, $3, $4, $5, $6, $7)"};

#define MF_JOIN_TOKEN_COLUMNS "id, salt, secret_hash, uses_left, expire_us, created_us, description"
constexpr Query kInsertJoinToken{"store_insert_join_token",
                                 "INSERT INTO join_tokens(" MF_JOIN_TOKEN_COLUMNS
                                 ") VALUES($1, $2, $3, $4, $5, $6, $7)"};
constexpr Query kLoadJoinTokens{"store_load_join_tokens",
                                "SELECT " MF_JOIN_TOKEN_COLUMNS
                                " FROM join_tokens ORDER BY created_us, id"};
constexpr Query kLoadJoinToken{"store_load_join_token",
                               "SELECT " MF_JOIN_TOKEN_COLUMNS " FROM join_tokens WHERE id = $1"};
#undef MF_JOIN_TOKEN_COLUMNS
// One statement: the check and the decrement cannot be separated by another
// writer (`join-token create`, another coordinator).
constexpr Query kUseJoinToken{"store_use_join_token",
                              "UPDATE join_tokens SET uses_left = uses_left - 1 WHERE id = $1 AND "
                              "uses_left > 0 AND expire_us > $2 RETURNING uses_left"};
constexpr Query kRecordCertificate{
    "store_record_certificate",
    "INSERT INTO issued_certificates(serial, name, fingerprint, not_after_us, issued_us) "
    "VALUES($1, $2, $3, $4, $5) ON CONFLICT(serial) DO UPDATE SET name = excluded.name, "
    "fingerprint = excluded.fingerprint, not_after_us = excluded.not_after_us, "
    "issued_us = excluded.issued_us"};
constexpr Query kLoadCertificates{"store_load_certificates",
                                  "SELECT serial, name, fingerprint, not_after_us, issued_us FROM "
                                  "issued_certificates WHERE name = $1 ORDER BY issued_us, serial"};
constexpr Query kInsertRevocation{
    "store_insert_revocation",
    "INSERT INTO revocations(name, revoked_us, serials) VALUES($1, $2, $3) ON CONFLICT(name) DO "
    "UPDATE SET revoked_us = excluded.revoked_us, serials = excluded.serials"};
constexpr Query kLoadRevocations{"store_load_revocations",
                                 "SELECT name, revoked_us, serials FROM revocations ORDER BY name"};

#define MF_API_TOKEN_COLUMNS \
  "id, username, role, salt, secret_hash, created_us, created_by, expire_us, revoked_us"
constexpr Query kInsertApiToken{"store_insert_api_token",
                                "INSERT INTO api_tokens(" MF_API_TOKEN_COLUMNS
                                ") VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9)"};
constexpr Query kLoadApiToken{"store_load_api_token",
                              "SELECT " MF_API_TOKEN_COLUMNS " FROM api_tokens WHERE id = $1"};
constexpr Query kLoadApiTokens{"store_load_api_tokens",
                               "SELECT " MF_API_TOKEN_COLUMNS
                               " FROM api_tokens ORDER BY created_us, id"};
#undef MF_API_TOKEN_COLUMNS
// Fails its transaction when there is no such token ($3 says so), so the
// audit line pipelined after it is not written.
constexpr Query kRevokeApiToken{
    "store_revoke_api_token",
    "WITH u AS (UPDATE api_tokens SET revoked_us = CASE revoked_us WHEN 0 THEN $2::bigint "
    "ELSE revoked_us END WHERE id = $1 RETURNING 1) SELECT musafarm_require_row(count(*), $3) "
    "FROM u"};
// The newest `limit` matching lines (NULL: all), returned oldest first.
constexpr Query kLoadAudit{
    "store_load_audit",
    "SELECT seq, at_us, username, role, action, target, peer, outcome FROM (SELECT * FROM audit "
    "WHERE ($1 = '' OR username = $1) AND at_us >= $2 ORDER BY seq DESC LIMIT $3) AS a "
    "ORDER BY seq"};

Params AuditParams(const AuditEntry& e) {
  Params p;
  p.Int(absl::ToUnixMicros(e.time)).Text(e.user).Text(e.role).Text(e.action).Text(e.target);
  p.Text(e.peer).Text(e.outcome);
  return p;
}

// 0 in the table: never (expiry) / not yet (revocation).
int64_t OptionalMicros(absl::Time t) {
  return t == absl::InfiniteFuture() ? 0 : absl::ToUnixMicros(t);
}
absl::Time FromOptionalMicros(int64_t us) {
  return us == 0 ? absl::InfiniteFuture() : absl::FromUnixMicros(us);
}

JoinToken ReadJoinToken(const Result& r, int i) {
  JoinToken t;
  t.id = r.String(i, 0);
  t.salt = r.String(i, 1);
  t.secret_hash = r.String(i, 2);
  t.uses_left = r.Int(i, 3);
  t.expire_time = absl::FromUnixMicros(r.Int(i, 4));
  t.created_at = absl::FromUnixMicros(r.Int(i, 5));
  t.description = r.String(i, 6);
  return t;
}

ApiToken ReadApiToken(const Result& r, int i) {
  ApiToken t;
  t.id = r.String(i, 0);
  t.user = r.String(i, 1);
  t.role = r.String(i, 2);
  t.salt = r.String(i, 3);
  t.secret_hash = r.String(i, 4);
  t.created_at = absl::FromUnixMicros(r.Int(i, 5));
  t.created_by = r.String(i, 6);
  t.expire_time = FromOptionalMicros(r.Int(i, 7));
  t.revoked_at = FromOptionalMicros(r.Int(i, 8));
  return t;
}

// Thread-compatible, not thread-safe: the coordinator's core loop is its only
// caller (see Store). Writes go out as one pipelined batch per call.
class PostgresStore final : public Store {
 public:
  PostgresStore(std::unique_ptr<pg::Connection> conn, SecretCipher cipher)
      : conn_(std::move(conn)),
        cipher_(std::move(cipher)),
        archive_(conn_.get()),
        schedules_(conn_.get(), &cipher_),
        webhooks_(conn_.get(), &cipher_) {}

  absl::Status Migrate();
  absl::Status SetFence(int64_t epoch);

  absl::Status Commit(const Mutation& m) override;
  absl::StatusOr<std::vector<v1::Job>> LoadJobs() override { return archive_.LoadAllJobs(); }
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
  absl::Status AddJob(const v1::Job& job, pg::Batch* batch);

  std::unique_ptr<pg::Connection> conn_;
  const SecretCipher cipher_;
  PostgresJobArchive archive_;
  PostgresScheduleStore schedules_;
  PostgresWebhookOutbox webhooks_;
};

absl::Status PostgresStore::SetFence(int64_t epoch) { return conn_->SetFence(epoch); }

absl::Status PostgresStore::Migrate() { return MigratePostgresSchema(*conn_); }

}  // namespace

absl::Status MigratePostgresSchema(pg::Connection& conn) {
  const std::string where = conn.where();
  pg::Connection* conn_ = &conn;
  return conn_->InTransaction("migrate", [&]() -> absl::Status {
    // Coordinators opening the database at once migrate one after the other.
    MF_RETURN_IF_ERROR(conn_->Exec(absl::StrCat("SELECT pg_advisory_xact_lock(",
                                                kMigrationLockKey, ")"),
                                   "lock for migration"));
    MF_RETURN_IF_ERROR(
        conn_->Exec("CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)",
                    "create schema_version"));
    MF_ASSIGN_OR_RETURN(Result r, conn_->RunOnce("SELECT coalesce(max(version), 0) FROM "
                                                 "schema_version",
                                                 Params(), "read the schema version"));
    const int64_t version = r.Int(0, 0);
    if (version > kPostgresSchemaVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "store: \"", where, "\" has schema version ", version,
          " but this coordinator knows versions up to ", kPostgresSchemaVersion,
          "; it was written by a newer musafarm, so run that version or restore a backup"));
    }
    if (version == kPostgresSchemaVersion) return absl::OkStatus();
    Log()->info("migrating {} from schema version {} to {}", where, version,
                kPostgresSchemaVersion);
    for (int64_t v = version; v < kPostgresSchemaVersion; ++v) {
      MF_RETURN_IF_ERROR(
          conn_->Exec(kMigrations[v], absl::StrCat("migrate to schema version ", v + 1)));
    }
    return conn_->Exec(absl::StrCat("DELETE FROM schema_version; INSERT INTO schema_version "
                                    "VALUES (",
                                    kPostgresSchemaVersion, ")"),
                       "record the schema version");
  });
}

namespace {

absl::Status PostgresStore::AddJob(const v1::Job& job, pg::Batch* batch) {
  // Tasks live in their own rows.
  v1::Job header = job;
  header.clear_tasks();
  std::string proto;
  if (!header.SerializeToString(&proto)) {
    return absl::InvalidArgumentError(absl::StrCat("store: cannot serialize job ", job.id()));
  }
  Params p;
  p.Text(job.id()).Text(job.name()).Int(job.state()).Int(job.created_us()).Int(job.ended_us());
  p.Text(job.submitter()).Int(static_cast<int64_t>(job.stored_bytes()));
  p.Int(job.retention_seconds()).Bytes(proto);
  batch->Add(kUpsertJob, std::move(p), absl::StrCat("insert job ", job.id()));
  for (const std::string& image : job.pushed_images()) {
    batch->Add(kInsertImage, Params().Text(job.id()).Text(image),
               absl::StrCat("record images of job ", job.id()));
  }
  return absl::OkStatus();
}

absl::Status PostgresStore::Commit(const Mutation& m) {
  if (m.empty()) return absl::OkStatus();
  MF_RETURN_IF_ERROR(ValidateMutation(m));
  // Jobs before tasks before transitions: the foreign keys are checked
  // statement by statement, as in SQLite.
  pg::Batch batch;
  for (const v1::Job& job : m.jobs) MF_RETURN_IF_ERROR(AddJob(job, &batch));
  for (const v1::Task& task : m.tasks) {
    std::string proto;
    if (!task.SerializeToString(&proto)) {
      return absl::InvalidArgumentError(absl::StrCat("store: cannot serialize task ", task.id()));
    }
    Params p;
    p.Text(task.id()).Text(task.job_id()).Int(task.state());
    p.Int(static_cast<int64_t>(task.attempt_id())).Text(task.agent()).Bytes(proto);  // bit-for-bit
    batch.Add(kUpsertTask, std::move(p), absl::StrCat("insert task ", task.id()));
  }
  for (const Transition& t : m.transitions) {
    Params p;
    p.Text(t.task_id).Int(static_cast<int64_t>(t.attempt_id)).Int(t.from).Int(t.to).Int(t.at_us);
    p.Text(t.reason);
    batch.Add(kInsertTransition, std::move(p),
              absl::StrCat("insert transition of task ", t.task_id));
  }
  for (const v1::Agent& agent : m.agents) {
    std::string proto;
    if (!agent.SerializeToString(&proto)) {
      return absl::InvalidArgumentError(
          absl::StrCat("store: cannot serialize agent ", agent.name()));
    }
    batch.Add(kUpsertAgent, Params().Text(agent.name()).Bytes(proto),
              absl::StrCat("insert agent ", agent.name()));
  }
  for (const auto& [job_id, secrets] : m.job_secrets) {
    for (const auto& [name, value] : secrets) {
      MF_ASSIGN_OR_RETURN(std::string sealed, cipher_.Seal(value, SecretContext(job_id, name)));
      batch.Add(kPutSecret, Params().Text(job_id).Text(name).Bytes(sealed),
                absl::StrCat("store secrets of job ", job_id));
    }
  }
  for (const std::string& job_id : m.drop_secrets) {
    batch.Add(kDropSecrets, Params().Text(job_id), absl::StrCat("drop secrets of job ", job_id));
  }
  for (const AuditEntry& e : m.audit) {
    batch.Add(kInsertAudit, AuditParams(e), absl::StrCat("append audit line ", e.action));
  }
  for (const ScheduleFire& f : m.schedule_fires) PostgresScheduleStore::AddFire(f, &batch);
  for (const auto& [job_id, hooks] : m.job_webhooks) {
    MF_RETURN_IF_ERROR(webhooks_.AddJobWebhooks(job_id, hooks, &batch));
  }
  for (const WebhookDelivery& d : m.deliveries) MF_RETURN_IF_ERROR(webhooks_.AddEnqueue(d, &batch));
  for (const std::string& job_id : m.drop_webhooks) {
    PostgresWebhookOutbox::AddDropJobWebhooks(job_id, &batch);
  }
  return conn_->Commit(batch);
}

absl::StatusOr<std::map<std::string, std::map<std::string, std::string>>>
PostgresStore::LoadSecrets() {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLoadSecrets, Params(), "load secrets"));
  std::map<std::string, std::map<std::string, std::string>> out;
  for (int i = 0; i < r.rows(); ++i) {
    std::string job_id = r.String(i, 0);
    std::string name = r.String(i, 1);
    absl::StatusOr<std::string> value = cipher_.Open(r.Bytes(i, 2), SecretContext(job_id, name));
    if (!value.ok()) {
      return absl::DataLossError(absl::StrCat("store: secret '", name, "' of job ", job_id,
                                              " in \"", conn_->where(),
                                              "\": ", value.status().message()));
    }
    out[job_id][name] = *std::move(value);
  }
  return out;
}

absl::StatusOr<std::vector<v1::Agent>> PostgresStore::LoadAgents() {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLoadAgents, Params(), "load agents"));
  std::vector<v1::Agent> agents;
  for (int i = 0; i < r.rows(); ++i) {
    absl::string_view blob = r.Bytes(i, 0);
    if (!agents.emplace_back().ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      return absl::DataLossError("store: an agent row has a corrupt proto");
    }
  }
  return agents;
}

absl::StatusOr<std::vector<Transition>> PostgresStore::LoadTransitions(const std::string& task_id) {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLoadTransitions, Params().Text(task_id),
                                           absl::StrCat("load transitions of task ", task_id)));
  std::vector<Transition> out;
  for (int i = 0; i < r.rows(); ++i) {
    Transition& t = out.emplace_back();
    t.task_id = task_id;
    t.attempt_id = static_cast<uint64_t>(r.Int(i, 0));
    // Proto3 enums are open: a value from a newer build passes through as is.
    t.from = static_cast<v1::TaskState>(r.Int(i, 1));
    t.to = static_cast<v1::TaskState>(r.Int(i, 2));
    t.at_us = r.Int(i, 3);
    t.reason = r.String(i, 4);
  }
  return out;
}

// --- enrolment ---------------------------------------------------------------

absl::Status PostgresStore::InsertJoinToken(const JoinToken& token) {
  if (token.id.empty()) return absl::InvalidArgumentError("store: join token with an empty id");
  Params p;
  p.Text(token.id).Text(token.salt).Text(token.secret_hash).Int(token.uses_left);
  p.Int(absl::ToUnixMicros(token.expire_time)).Int(absl::ToUnixMicros(token.created_at));
  p.Text(token.description);
  absl::Status s =
      conn_->Run(kInsertJoinToken, p, absl::StrCat("insert join token ", token.id)).status();
  if (absl::IsAlreadyExists(s)) {
    return absl::AlreadyExistsError(absl::StrCat("store: join token ", token.id, " exists"));
  }
  return s;
}

absl::StatusOr<std::vector<JoinToken>> PostgresStore::LoadJoinTokens() {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLoadJoinTokens, Params(), "load join tokens"));
  std::vector<JoinToken> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(ReadJoinToken(r, i));
  return out;
}

absl::StatusOr<JoinToken> PostgresStore::LoadJoinToken(const std::string& id) {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLoadJoinToken, Params().Text(id),
                                           absl::StrCat("load join token ", id)));
  if (r.rows() == 0) return absl::NotFoundError(absl::StrCat("no join token ", id));
  return ReadJoinToken(r, 0);
}

absl::StatusOr<int64_t> PostgresStore::UseJoinToken(const std::string& id, absl::Time now) {
  MF_ASSIGN_OR_RETURN(Result r,
                      conn_->Run(kUseJoinToken, Params().Text(id).Int(absl::ToUnixMicros(now)),
                                 absl::StrCat("use join token ", id)));
  if (r.rows() > 0) return r.Int(0, 0);
  MF_ASSIGN_OR_RETURN(JoinToken t, LoadJoinToken(id));
  if (t.uses_left <= 0) {
    return absl::FailedPreconditionError(absl::StrCat("join token ", id, " is used up"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat("join token ", id, " expired at ", FormatUtc(t.expire_time)));
}

absl::Status PostgresStore::RecordCertificate(const IssuedCertificate& cert) {
  Params p;
  p.Text(cert.serial_hex).Text(cert.name).Text(cert.fingerprint);
  p.Int(absl::ToUnixMicros(cert.not_after)).Int(absl::ToUnixMicros(cert.issued_at));
  return conn_->Run(kRecordCertificate, p, absl::StrCat("record certificate ", cert.serial_hex))
      .status();
}

absl::StatusOr<std::vector<IssuedCertificate>> PostgresStore::LoadCertificates(
    const std::string& name) {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLoadCertificates, Params().Text(name),
                                           absl::StrCat("load certificates of ", name)));
  std::vector<IssuedCertificate> out;
  for (int i = 0; i < r.rows(); ++i) {
    IssuedCertificate& c = out.emplace_back();
    c.serial_hex = r.String(i, 0);
    c.name = r.String(i, 1);
    c.fingerprint = r.String(i, 2);
    c.not_after = absl::FromUnixMicros(r.Int(i, 3));
    c.issued_at = absl::FromUnixMicros(r.Int(i, 4));
  }
  return out;
}

absl::Status PostgresStore::InsertRevocation(const Revocation& rev) {
  if (rev.name.empty()) return absl::InvalidArgumentError("store: revocation of an empty name");
  Params p;
  p.Text(rev.name).Int(absl::ToUnixMicros(rev.revoked_at)).Text(absl::StrJoin(rev.serials, ","));
  return conn_->Run(kInsertRevocation, p, absl::StrCat("revoke ", rev.name)).status();
}

absl::StatusOr<std::vector<Revocation>> PostgresStore::LoadRevocations() {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLoadRevocations, Params(), "load revocations"));
  std::vector<Revocation> out;
  for (int i = 0; i < r.rows(); ++i) {
    Revocation& rev = out.emplace_back();
    rev.name = r.String(i, 0);
    rev.revoked_at = absl::FromUnixMicros(r.Int(i, 1));
    rev.serials = absl::StrSplit(r.Bytes(i, 2), ',', absl::SkipEmpty());
  }
  return out;
}

// --- users -------------------------------------------------------------------

absl::Status PostgresStore::InsertApiToken(const ApiToken& token, const AuditEntry& audit) {
  if (token.id.empty()) return absl::InvalidArgumentError("store: API token with an empty id");
  Params p;
  p.Text(token.id).Text(token.user).Text(token.role).Text(token.salt).Text(token.secret_hash);
  p.Int(absl::ToUnixMicros(token.created_at)).Text(token.created_by);
  p.Int(OptionalMicros(token.expire_time)).Int(OptionalMicros(token.revoked_at));
  pg::Batch batch;
  batch.Add(kInsertApiToken, std::move(p), absl::StrCat("insert API token ", token.id));
  batch.Add(kInsertAudit, AuditParams(audit), absl::StrCat("append audit line ", audit.action));
  absl::Status s = conn_->Commit(batch);
  if (absl::IsAlreadyExists(s)) {
    return absl::AlreadyExistsError(absl::StrCat("store: API token ", token.id, " exists"));
  }
  return s;
}

absl::StatusOr<ApiToken> PostgresStore::LoadApiToken(const std::string& id) {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLoadApiToken, Params().Text(id),
                                           absl::StrCat("load API token ", id)));
  if (r.rows() == 0) return absl::NotFoundError(absl::StrCat("no API token ", id));
  return ReadApiToken(r, 0);
}

absl::StatusOr<std::vector<ApiToken>> PostgresStore::LoadApiTokens() {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLoadApiTokens, Params(), "load API tokens"));
  std::vector<ApiToken> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(ReadApiToken(r, i));
  return out;
}

absl::Status PostgresStore::RevokeApiToken(const std::string& id, absl::Time when,
                                           const AuditEntry& audit) {
  const std::string missing = absl::StrCat("no API token ", id);
  pg::Batch batch;
  batch.Add(kRevokeApiToken, Params().Text(id).Int(absl::ToUnixMicros(when)).Text(missing),
            absl::StrCat("revoke API token ", id));
  batch.Add(kInsertAudit, AuditParams(audit), absl::StrCat("append audit line ", audit.action));
  absl::Status s = conn_->Commit(batch);
  if (absl::IsNotFound(s)) return absl::NotFoundError(missing);
  return s;
}

absl::StatusOr<std::vector<AuditEntry>> PostgresStore::LoadAudit(const AuditFilter& filter) {
  Params p;
  p.Text(filter.user);
  p.Int(filter.since == absl::InfinitePast() ? std::numeric_limits<int64_t>::min()
                                             : absl::ToUnixMicros(filter.since));
  if (filter.limit <= 0) {
    p.Null();  // LIMIT NULL: every line
  } else {
    p.Int(filter.limit);
  }
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLoadAudit, p, "load audit log"));
  std::vector<AuditEntry> out;
  for (int i = 0; i < r.rows(); ++i) {
    AuditEntry& e = out.emplace_back();
    e.seq = r.Int(i, 0);
    e.time = absl::FromUnixMicros(r.Int(i, 1));
    e.user = r.String(i, 2);
    e.role = r.String(i, 3);
    e.action = r.String(i, 4);
    e.target = r.String(i, 5);
    e.peer = r.String(i, 6);
    e.outcome = r.String(i, 7);
  }
  return out;
}

}  // namespace

bool IsPostgresUrl(const std::string& spec) {
  return absl::StartsWith(spec, "postgres://") || absl::StartsWith(spec, "postgresql://");
}

absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                         const SecretCipher& cipher,
                                                         int64_t fence_epoch) {
  if (!IsPostgresUrl(url)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "store: \"", pg::MaskPassword(url), "\" is not a postgres:// or postgresql:// URL"));
  }
  MF_ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> conn, pg::Connection::Open(url));
  auto store = std::make_unique<PostgresStore>(std::move(conn), cipher);
  MF_RETURN_IF_ERROR(store->Migrate());
  // After migrating: the fence's function and row come with the schema.
  MF_RETURN_IF_ERROR(store->SetFence(fence_epoch));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace musafarm::coordinator
