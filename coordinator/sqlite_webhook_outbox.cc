#include "coordinator/sqlite_webhook_outbox.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/secret_cipher.h"
#include "coordinator/sqlite_statement.h"

namespace musafarm::coordinator {
namespace {

using sql::Statement;

absl::StatusOr<Statement> Prepare(sqlite3* db, absl::string_view text) {
  return Statement::Prepare(db, text, /*persistent=*/false);
}

absl::Status Done(Statement& s, int rc, absl::string_view what) {
  if (rc != SQLITE_DONE) return s.Error(rc, what);
  return absl::OkStatus();
}

}  // namespace

// Apart from every job secret's context, whose names cannot hold ':'.
std::string WebhookContext(const std::string& job_id, int64_t seq) {
  return SecretContext(job_id, absl::StrCat("webhook:", seq));
}
std::string DeliveryTargetContext(const std::string& delivery_id) {
  return SecretContext(absl::StrCat("delivery:", delivery_id), "url");
}

absl::StatusOr<std::string> SqliteWebhookOutbox::Seal(const std::string& value,
                                                     const std::string& context) const {
  if (cipher_ == nullptr) return value;
  return cipher_->Seal(value, context);
}

absl::StatusOr<std::string> SqliteWebhookOutbox::Open(std::string stored,
                                                     const std::string& context) const {
  if (cipher_ == nullptr || !SecretCipher::IsSealed(stored)) return stored;
  absl::StatusOr<std::string> opened = cipher_->Open(stored, context);
  if (!opened.ok()) {
    return absl::DataLossError(absl::StrCat("store: a webhook URL in \"", path_,
                                            "\": ", opened.status().message()));
  }
  return opened;
}

absl::Status SqliteWebhookOutbox::WriteJobWebhooks(const std::string& job_id,
                                                   const std::vector<v1::Webhook>& hooks) {
  MF_ASSIGN_OR_RETURN(Statement s, Prepare(db_,
                                           "INSERT OR REPLACE INTO job_webhooks(job_id, seq, "
                                           "value) VALUES(?1, ?2, ?3)"));
  for (size_t i = 0; i < hooks.size(); ++i) {
    MF_ASSIGN_OR_RETURN(std::string sealed,
                        Seal(hooks[i].SerializeAsString(), WebhookContext(job_id, i)));
    sql::ResetOnExit reset(s);
    s.BindText(1, job_id);
    s.BindInt64(2, static_cast<int64_t>(i));
    s.BindBlob(3, sealed);
    MF_RETURN_IF_ERROR(Done(s, s.Step(), absl::StrCat("store the webhooks of job ", job_id)));
  }
  return absl::OkStatus();
}

absl::Status SqliteWebhookOutbox::DropJobWebhooks(const std::string& job_id) {
  MF_ASSIGN_OR_RETURN(Statement s, Prepare(db_, "DELETE FROM job_webhooks WHERE job_id = ?1"));
  s.BindText(1, job_id);
  return Done(s, s.Step(), absl::StrCat("drop the webhooks of job ", job_id));
}

absl::Status SqliteWebhookOutbox::Enqueue(const WebhookDelivery& d) {
  MF_ASSIGN_OR_RETURN(Statement s,
                      Prepare(db_,
                              "INSERT INTO webhook_outbox(id, job_id, target, body, attempts, "
                              "next_attempt_us, last_error) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  MF_ASSIGN_OR_RETURN(std::string target, Seal(d.url, DeliveryTargetContext(d.id)));
  s.BindText(1, d.id);
  s.BindText(2, d.job_id);
  s.BindBlob(3, target);
  s.BindBlob(4, d.body);
  s.BindInt64(5, d.attempts);
  s.BindInt64(6, d.next_attempt == absl::InfinitePast() ? 0 : absl::ToUnixMicros(d.next_attempt));
  s.BindText(7, d.last_error);
  return Done(s, s.Step(), absl::StrCat("queue a notification of job ", d.job_id));
}

absl::StatusOr<std::vector<WebhookDelivery>> SqliteWebhookOutbox::Due(absl::Time now, int limit) {
  MF_ASSIGN_OR_RETURN(Statement s,
                      Prepare(db_,
                              "SELECT id, job_id, target, body, attempts, next_attempt_us, "
                              "last_error FROM webhook_outbox WHERE next_attempt_us <= ?1 "
                              "ORDER BY next_attempt_us LIMIT ?2"));
  s.BindInt64(1, absl::ToUnixMicros(now));
  s.BindInt64(2, limit);
  std::vector<WebhookDelivery> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    WebhookDelivery d;
    d.id = std::string(s.ColumnText(0));
    d.job_id = std::string(s.ColumnText(1));
    MF_ASSIGN_OR_RETURN(d.url, Open(std::string(s.ColumnBlob(2)), DeliveryTargetContext(d.id)));
    d.body = std::string(s.ColumnBlob(3));
    d.attempts = static_cast<int>(s.ColumnInt64(4));
    d.next_attempt = absl::FromUnixMicros(s.ColumnInt64(5));
    d.last_error = std::string(s.ColumnText(6));
    out.push_back(std::move(d));
  }
  if (rc != SQLITE_DONE) return s.Error(rc, "read the webhook outbox");
  return out;
}

absl::StatusOr<absl::Time> SqliteWebhookOutbox::NextDue() {
  MF_ASSIGN_OR_RETURN(Statement s,
                      Prepare(db_, "SELECT MIN(next_attempt_us), COUNT(*) FROM webhook_outbox"));
  int rc = s.Step();
  if (rc != SQLITE_ROW) return s.Error(rc, "read the webhook outbox");
  if (s.ColumnInt64(1) == 0) return absl::InfiniteFuture();
  return absl::FromUnixMicros(s.ColumnInt64(0));
}

absl::Status SqliteWebhookOutbox::Remove(const std::string& id) {
  MF_ASSIGN_OR_RETURN(Statement s, Prepare(db_, "DELETE FROM webhook_outbox WHERE id = ?1"));
  s.BindText(1, id);
  return Done(s, s.Step(), absl::StrCat("remove notification ", id));
}

absl::Status SqliteWebhookOutbox::Retry(const std::string& id, int attempts, absl::Time next,
                                        const std::string& error) {
  MF_ASSIGN_OR_RETURN(Statement s, Prepare(db_,
                                           "UPDATE webhook_outbox SET attempts = ?2, "
                                           "next_attempt_us = ?3, last_error = ?4 WHERE id = ?1"));
  s.BindText(1, id);
  s.BindInt64(2, attempts);
  s.BindInt64(3, absl::ToUnixMicros(next));
  s.BindText(4, error);
  return Done(s, s.Step(), absl::StrCat("reschedule notification ", id));
}

absl::StatusOr<std::map<std::string, std::vector<v1::Webhook>>>
SqliteWebhookOutbox::LoadJobWebhooks() {
  MF_ASSIGN_OR_RETURN(Statement s,
                      Prepare(db_, "SELECT job_id, seq, value FROM job_webhooks ORDER BY job_id, seq"));
  std::map<std::string, std::vector<v1::Webhook>> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    const std::string job_id(s.ColumnText(0));
    MF_ASSIGN_OR_RETURN(std::string bytes,
                        Open(std::string(s.ColumnBlob(2)), WebhookContext(job_id, s.ColumnInt64(1))));
    v1::Webhook hook;
    if (!hook.ParseFromString(bytes)) {
      return absl::DataLossError(
          absl::StrCat("store: a webhook of job ", job_id, " in \"", path_, "\" does not parse"));
    }
    out[job_id].push_back(std::move(hook));
  }
  if (rc != SQLITE_DONE) return s.Error(rc, "load the jobs' webhooks");
  return out;
}

}  // namespace musafarm::coordinator
