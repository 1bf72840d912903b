#pragma once

#include <map>
#include <string>
#include <vector>

#include "coordinator/pg_connection.h"
#include "coordinator/webhook_outbox.h"

namespace musafarm::coordinator {

class SecretCipher;

// WebhookOutbox over a PostgreSQL store's connection (job_webhooks,
// webhook_outbox; postgres_store.h). URLs are sealed with the job secrets'
// cipher, in the same contexts as the SQLite outbox. Owned by the PostgreSQL
// Store, whose Commit batch takes the writers below. Not thread-safe: one
// connection, one thread.
class PostgresWebhookOutbox final : public WebhookOutbox {
 public:
  // `cipher`: not owned.
  PostgresWebhookOutbox(pg::Connection* conn, const SecretCipher* cipher)
      : conn_(conn), cipher_(cipher) {}

  // Add their statements to the caller's batch.
  absl::Status AddJobWebhooks(const std::string& job_id, const std::vector<v1::Webhook>& hooks,
                              pg::Batch* batch) const;
  static void AddDropJobWebhooks(const std::string& job_id, pg::Batch* batch);
  absl::Status AddEnqueue(const WebhookDelivery& delivery, pg::Batch* batch) const;

  absl::StatusOr<std::vector<WebhookDelivery>> Due(absl::Time now, int limit) override;
  absl::StatusOr<absl::Time> NextDue() override;
  absl::Status Remove(const std::string& id) override;
  absl::Status Retry(const std::string& id, int attempts, absl::Time next,
                     const std::string& error) override;
  absl::StatusOr<std::map<std::string, std::vector<v1::Webhook>>> LoadJobWebhooks() override;

 private:
  absl::StatusOr<std::string> Open(std::string stored, const std::string& context) const;

  pg::Connection* const conn_;  // the store's; not owned
  const SecretCipher* const cipher_;
};

}  // namespace musafarm::coordinator
