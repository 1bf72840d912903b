#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/job_archive.h"
#include "coordinator/schedule_store.h"
#include "coordinator/webhook_outbox.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// One recorded task state change: the audit trail behind `musafarm status`.
struct Transition {
  std::string task_id;
  uint64_t attempt_id = 0;
  v1::TaskState from = v1::TASK_STATE_UNSPECIFIED;
  v1::TaskState to = v1::TASK_STATE_UNSPECIFIED;
  int64_t at_us = 0;
  std::string reason;
};

class SecretCipher;

// One line of the audit log: a state-changing user call, allowed or refused.
// Append-only: the store refuses to change or delete a row once written.
struct AuditEntry {
  int64_t seq = 0;  // set by the store: insertion order
  absl::Time time = absl::InfinitePast();
  std::string user;     // who (the token's user, or the OS user in --insecure mode)
  std::string role;     // "viewer", "submitter" or "admin"
  std::string action;   // e.g. "submit", "cancel", "drain", "token.create"
  std::string target;   // job or task id, agent name, token id
  std::string peer;     // where the call came from (gRPC peer, "host" for host commands)
  std::string outcome;  // "ok", "denied: ...", or "error: ..."
};

// Which audit lines LoadAudit returns: newest `limit`, oldest first.
struct AuditFilter {
  std::string user;                           // empty: everyone
  absl::Time since = absl::InfinitePast();    // lines at or after this time
  int limit = 100;
};

// Everything one coordinator event changed. Committed as one transaction, so a
// crash leaves either all of it or none of it.
struct Mutation {
  std::vector<v1::Job> jobs;    // job rows to upsert; Job.tasks is ignored here
  std::vector<v1::Task> tasks;  // task rows to upsert
  std::vector<Transition> transitions;
  std::vector<v1::Agent> agents;  // agent rows to upsert (by name)
  // Secret values of a job (job id, name -> value), kept apart from every row
  // that is ever shown, and dropped (overwritten on disk) when the job ends.
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> job_secrets;
  std::vector<std::string> drop_secrets;  // job ids
  std::vector<AuditEntry> audit;          // appended, never changed
  // Schedule slots acted on with the jobs above (their run rows and the
  // schedules' new fire times): a fired slot and its job commit together.
  std::vector<ScheduleFire> schedule_fires;
  // A job's webhooks (job id, targets), sealed like its secrets and dropped
  // when it ends, in the transaction that queues its notifications.
  std::vector<std::pair<std::string, std::vector<v1::Webhook>>> job_webhooks;
  std::vector<std::string> drop_webhooks;  // job ids
  std::vector<WebhookDelivery> deliveries;  // into the outbox
  bool empty() const {
    return jobs.empty() && tasks.empty() && transitions.empty() && agents.empty() &&
           job_secrets.empty() && drop_secrets.empty() && audit.empty() && schedule_fires.empty() &&
           job_webhooks.empty() && drop_webhooks.empty() && deliveries.empty();
  }
};

// A join token as stored: never its secret, only a salted hash of it
// (coordinator/join_token.h makes and checks them).
struct JoinToken {
  std::string id;           // 8 lowercase hex chars, the public half of the token
  std::string salt;         // random, hex
  std::string secret_hash;  // hex SHA-256 of salt + secret
  int64_t uses_left = 0;
  absl::Time expire_time = absl::InfinitePast();
  absl::Time created_at = absl::InfinitePast();
  std::string description;
};

// A user's API token as stored: never its secret, only a salted hash of it
// (coordinator/api_token.h makes and checks them).
struct ApiToken {
  std::string id;           // the public half of the token: may be shown and logged
  std::string user;         // whom it stands for
  std::string role;         // "viewer", "submitter" or "admin"
  std::string salt;         // random, hex
  std::string secret_hash;  // hex SHA-256 of salt + secret
  absl::Time created_at = absl::InfinitePast();
  std::string created_by;   // the admin who made it ("host" for the host command)
  absl::Time expire_time = absl::InfiniteFuture();  // InfiniteFuture: never
  absl::Time revoked_at = absl::InfiniteFuture();   // InfiniteFuture: not revoked
  bool revoked() const { return revoked_at != absl::InfiniteFuture(); }
};

// A certificate the farm's CA signed for an agent (enrolment or renewal).
struct IssuedCertificate {
  std::string serial_hex;
  std::string name;         // the agent name, its CN
  std::string fingerprint;  // "sha256:..." of the DER certificate
  absl::Time not_after = absl::InfinitePast();
  absl::Time issued_at = absl::InfinitePast();
};

// An agent name whose certificates are all refused.
struct Revocation {
  std::string name;
  absl::Time revoked_at = absl::InfinitePast();
  std::vector<std::string> serials;  // the certificates issued to it by then
};

// Durable farm state. Called only from the coordinator's core loop, so
// implementations need not be thread-safe. SQLite is the embedded default; a
// PostgreSQL backend for highly available coordinators can implement the same.
class Store {
 public:
  virtual ~Store() = default;

  // Applies `m` atomically and durably: once it returns OK, a crash or restart
  // keeps all of it.
  virtual absl::Status Commit(const Mutation& m) = 0;

  // Every job, oldest first, each with its tasks in the order first inserted.
  // The coordinator does not call it (it loads unfinished jobs only, through
  // archive()); backups and tests do.
  virtual absl::StatusOr<std::vector<v1::Job>> LoadJobs() = 0;

  // The jobs read on demand and deleted by retention (coordinator/job_archive.h).
  virtual JobArchive& archive() = 0;

  // The schedules (issue 14; coordinator/schedule_store.h).
  virtual ScheduleStore& schedules() = 0;
  // The webhook outbox and the jobs' webhooks (issue 14; coordinator/webhook_outbox.h).
  virtual WebhookOutbox& webhooks() = 0;

  // Every agent ever seen, by name.
  virtual absl::StatusOr<std::vector<v1::Agent>> LoadAgents() = 0;

  // The secrets of every job that has not dropped them: job id -> name -> value.
  virtual absl::StatusOr<std::map<std::string, std::map<std::string, std::string>>>
  LoadSecrets() = 0;

  // The transitions of one task, oldest first.
  virtual absl::StatusOr<std::vector<Transition>> LoadTransitions(const std::string& task_id) = 0;

  // --- enrolment (coordinator/enrollment.h). Join tokens are also written by
  // `musafarm-coordinator join-token create`, another process on the same
  // file, so the coordinator reads them at each use and keeps no copy.

  // Adds a token. ALREADY_EXISTS when its id is taken.
  virtual absl::Status InsertJoinToken(const JoinToken& token) = 0;
  // Every token, by creation time (used up and expired ones too).
  virtual absl::StatusOr<std::vector<JoinToken>> LoadJoinTokens() = 0;
  // The token `id`; NOT_FOUND when there is none.
  virtual absl::StatusOr<JoinToken> LoadJoinToken(const std::string& id) = 0;
  // Takes one use of token `id` if, at `now`, it has not expired and has uses
  // left: checked and decremented in one statement, so two enrolments (or two
  // processes) never share the last use. Returns the uses left after it;
  // FAILED_PRECONDITION when it has none left or has expired, NOT_FOUND when
  // there is no such token.
  virtual absl::StatusOr<int64_t> UseJoinToken(const std::string& id, absl::Time now) = 0;

  virtual absl::Status RecordCertificate(const IssuedCertificate& cert) = 0;
  // The certificates issued to `name`, oldest first.
  virtual absl::StatusOr<std::vector<IssuedCertificate>> LoadCertificates(
      const std::string& name) = 0;

  // Records (or replaces) the revocation of `r.name`.
  virtual absl::Status InsertRevocation(const Revocation& r) = 0;
  // Every revocation, by name.
  virtual absl::StatusOr<std::vector<Revocation>> LoadRevocations() = 0;

  // --- users (coordinator/access_control.h). API tokens are also written by
  // `musafarm-coordinator token create` in another process, so they are read
  // at each use and never cached.

  // Adds `token` and appends `audit` in one transaction. ALREADY_EXISTS when
  // its id is taken.
  virtual absl::Status InsertApiToken(const ApiToken& token, const AuditEntry& audit) = 0;
  // The token `id`; NOT_FOUND when there is none.
  virtual absl::StatusOr<ApiToken> LoadApiToken(const std::string& id) = 0;
  // Every token (revoked and expired ones too), by creation time.
  virtual absl::StatusOr<std::vector<ApiToken>> LoadApiTokens() = 0;
  // Marks token `id` revoked at `when` (once: a second revocation keeps the
  // first time) and appends `audit`, in one transaction. NOT_FOUND when there
  // is no such token.
  virtual absl::Status RevokeApiToken(const std::string& id, absl::Time when,
                                      const AuditEntry& audit) = 0;
  // Audit lines matching `filter` (Commit appends them).
  virtual absl::StatusOr<std::vector<AuditEntry>> LoadAudit(const AuditFilter& filter) = 0;
};

// What every backend's Commit checks before it writes anything: no empty job,
// task or agent ids, no task without its job id (INVALID_ARGUMENT). Empty ids
// would be stored (UNIQUE allows one '') and then match nothing the
// coordinator asks for.
absl::Status ValidateMutation(const Mutation& m);

// Appends every part of `from` to `to`, after what `to` holds: one commit of
// `to` then writes both (rows written twice are upserted twice, the later
// last).
void AppendMutation(Mutation& to, Mutation from);

// Opens (creating if needed) an SQLite database at `path` (":memory:" for tests)
// in WAL mode with synchronous=FULL, and migrates its schema.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);
// The same, with job secrets sealed by `cipher` at rest (the coordinator's
// case): values are encrypted before they are written and decrypted by
// LoadSecrets(); rows an older coordinator wrote in clear are sealed at open
// and the WAL truncated, so no value stays in clear in the files.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path,
                                                       const SecretCipher& cipher);

}  // namespace musafarm::coordinator
