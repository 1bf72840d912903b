#include "coordinator/postgres_webhook_outbox.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/secret_cipher.h"
#include "coordinator/sqlite_webhook_outbox.h"

namespace musafarm::coordinator {
namespace {

using pg::Params;
using pg::Query;
using pg::Result;

constexpr Query kPutWebhook{"webhook_put",
                            "INSERT INTO job_webhooks(job_id, seq, value) VALUES($1, $2, $3) "
                            "ON CONFLICT(job_id, seq) DO UPDATE SET value = excluded.value"};
constexpr Query kDropWebhooks{"webhook_drop", "DELETE FROM job_webhooks WHERE job_id = $1"};
constexpr Query kEnqueue{"webhook_enqueue",
                         "INSERT INTO webhook_outbox(id, job_id, target, body, attempts, "
                         "next_attempt_us, last_error) VALUES($1, $2, $3, $4, $5, $6, $7)"};
constexpr Query kDue{"webhook_due",
                     "SELECT id, job_id, target, body, attempts, next_attempt_us, last_error "
                     "FROM webhook_outbox WHERE next_attempt_us <= $1 "
                     "ORDER BY next_attempt_us LIMIT $2"};
constexpr Query kNextDue{"webhook_next_due",
                         "SELECT min(next_attempt_us), count(*) FROM webhook_outbox"};
constexpr Query kRemove{"webhook_remove", "DELETE FROM webhook_outbox WHERE id = $1"};
constexpr Query kRetry{"webhook_retry",
                       "UPDATE webhook_outbox SET attempts = $2, next_attempt_us = $3, "
                       "last_error = $4 WHERE id = $1"};
constexpr Query kLoadWebhooks{"webhook_load",
                              "SELECT job_id, seq, value FROM job_webhooks ORDER BY job_id, seq"};

}  // namespace

absl::StatusOr<std::string> PostgresWebhookOutbox::Open(std::string stored,
                                                        const std::string& context) const {
  absl::StatusOr<std::string> opened = cipher_->Open(stored, context);
  if (!opened.ok()) {
    return absl::DataLossError(absl::StrCat("store: a webhook URL in \"", conn_->where(),
                                            "\": ", opened.status().message()));
  }
  return opened;
}

absl::Status PostgresWebhookOutbox::AddJobWebhooks(const std::string& job_id,
                                                   const std::vector<v1::Webhook>& hooks,
                                                   pg::Batch* batch) const {
  for (size_t i = 0; i < hooks.size(); ++i) {
    const int64_t seq = static_cast<int64_t>(i);
    MF_ASSIGN_OR_RETURN(std::string sealed,
                        cipher_->Seal(hooks[i].SerializeAsString(), WebhookContext(job_id, seq)));
    batch->Add(kPutWebhook, Params().Text(job_id).Int(seq).Bytes(sealed),
               absl::StrCat("store the webhooks of job ", job_id));
  }
  return absl::OkStatus();
}

void PostgresWebhookOutbox::AddDropJobWebhooks(const std::string& job_id, pg::Batch* batch) {
  batch->Add(kDropWebhooks, Params().Text(job_id),
             absl::StrCat("drop the webhooks of job ", job_id));
}

absl::Status PostgresWebhookOutbox::AddEnqueue(const WebhookDelivery& d, pg::Batch* batch) const {
  MF_ASSIGN_OR_RETURN(std::string target, cipher_->Seal(d.url, DeliveryTargetContext(d.id)));
  Params p;
  p.Text(d.id).Text(d.job_id).Bytes(target).Bytes(d.body).Int(d.attempts);
  p.Int(d.next_attempt == absl::InfinitePast() ? 0 : absl::ToUnixMicros(d.next_attempt));
  p.Text(d.last_error);
  batch->Add(kEnqueue, std::move(p), absl::StrCat("queue a notification of job ", d.job_id));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<WebhookDelivery>> PostgresWebhookOutbox::Due(absl::Time now,
                                                                        int limit) {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kDue, Params().Int(absl::ToUnixMicros(now)).Int(limit),
                                           "read the webhook outbox"));
  std::vector<WebhookDelivery> out;
  for (int i = 0; i < r.rows(); ++i) {
    WebhookDelivery& d = out.emplace_back();
    d.id = r.String(i, 0);
    d.job_id = r.String(i, 1);
    MF_ASSIGN_OR_RETURN(d.url, Open(r.String(i, 2), DeliveryTargetContext(d.id)));
    d.body = r.String(i, 3);
    d.attempts = static_cast<int>(r.Int(i, 4));
    d.next_attempt = absl::FromUnixMicros(r.Int(i, 5));
    d.last_error = r.String(i, 6);
  }
  return out;
}

absl::StatusOr<absl::Time> PostgresWebhookOutbox::NextDue() {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kNextDue, Params(), "read the webhook outbox"));
  if (r.Int(0, 1) == 0) return absl::InfiniteFuture();
  return absl::FromUnixMicros(r.Int(0, 0));
}

absl::Status PostgresWebhookOutbox::Remove(const std::string& id) {
  return conn_->Run(kRemove, Params().Text(id), absl::StrCat("remove notification ", id)).status();
}

absl::Status PostgresWebhookOutbox::Retry(const std::string& id, int attempts, absl::Time next,
                                          const std::string& error) {
  Params p;
  p.Text(id).Int(attempts).Int(absl::ToUnixMicros(next)).Text(error);
  return conn_->Run(kRetry, p, absl::StrCat("reschedule notification ", id)).status();
}

absl::StatusOr<std::map<std::string, std::vector<v1::Webhook>>>
PostgresWebhookOutbox::LoadJobWebhooks() {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLoadWebhooks, Params(), "load the jobs' webhooks"));
  std::map<std::string, std::vector<v1::Webhook>> out;
  for (int i = 0; i < r.rows(); ++i) {
    const std::string job_id = r.String(i, 0);
    MF_ASSIGN_OR_RETURN(std::string bytes, Open(r.String(i, 2), WebhookContext(job_id, r.Int(i, 1))));
    v1::Webhook hook;
    if (!hook.ParseFromString(bytes)) {
      return absl::DataLossError(absl::StrCat("store: a webhook of job ", job_id, " in \"",
                                              conn_->where(), "\" does not parse"));
    }
    out[job_id].push_back(std::move(hook));
  }
  return out;
}

}  // namespace musafarm::coordinator
