#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/webhook_outbox.h"

namespace musafarm::coordinator {

class SecretCipher;

// WebhookOutbox over an SQLite store's connection (schema version 6:
// job_webhooks, webhook_outbox; see sqlite_store.h). URLs are sealed with the
// job secrets' cipher. Owned by the SQLite Store, which calls the writers
// below inside Commit's transaction. Not thread-safe: one connection, one thread.
class SqliteWebhookOutbox final : public WebhookOutbox {
 public:
  // `cipher`: not owned; null: URLs in clear (tests).
  SqliteWebhookOutbox(sqlite3* db, std::string path, const SecretCipher* cipher)
      : db_(db), path_(std::move(path)), cipher_(cipher) {}

  // Inside the caller's transaction.
  absl::Status WriteJobWebhooks(const std::string& job_id, const std::vector<v1::Webhook>& hooks);
  absl::Status DropJobWebhooks(const std::string& job_id);
  absl::Status Enqueue(const WebhookDelivery& delivery);

  absl::StatusOr<std::vector<WebhookDelivery>> Due(absl::Time now, int limit) override;
  absl::StatusOr<absl::Time> NextDue() override;
  absl::Status Remove(const std::string& id) override;
  absl::Status Retry(const std::string& id, int attempts, absl::Time next,
                     const std::string& error) override;
  absl::StatusOr<std::map<std::string, std::vector<v1::Webhook>>> LoadJobWebhooks() override;

 private:
  absl::StatusOr<std::string> Seal(const std::string& value, const std::string& context) const;
  absl::StatusOr<std::string> Open(std::string stored, const std::string& context) const;

  sqlite3* const db_;  // the store's; not owned
  const std::string path_;
  const SecretCipher* const cipher_;
};

// The contexts a job's webhook (its `seq`-th) and a delivery's URL are sealed
// with; every backend uses the same.
std::string WebhookContext(const std::string& job_id, int64_t seq);
std::string DeliveryTargetContext(const std::string& delivery_id);

}  // namespace musafarm::coordinator
