#pragma once

// The durable outbox of webhook notifications (issue 14, item 2): a delivery is
// written in the transaction that ends its job (Mutation::deliveries), so it
// survives any crash after the job ended, and WebhookSender takes it out only
// once the receiver answered 2xx. Every attempt of one delivery carries its id
// (X-Musafarm-Delivery), so a receiver drops the duplicates a crash between
// sending and recording can cause.

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

struct WebhookDelivery {
  std::string id;      // random; the same for every attempt
  std::string job_id;
  std::string url;     // in clear here; sealed at rest
  std::string body;    // the request body, as built when the job ended
  int attempts = 0;    // made so far
  absl::Time next_attempt = absl::InfinitePast();
  std::string last_error;
};

// Called from the core loop (writes through Store::Commit, LoadJobWebhooks at
// recovery) and from the sender's own connection (the rest).
class WebhookOutbox {
 public:
  virtual ~WebhookOutbox() = default;

  // Deliveries whose next attempt is due at `now`, soonest first, at most `limit`.
  virtual absl::StatusOr<std::vector<WebhookDelivery>> Due(absl::Time now, int limit) = 0;
  // The soonest next attempt of any delivery; InfiniteFuture when there is none.
  virtual absl::StatusOr<absl::Time> NextDue() = 0;
  // Takes delivery `id` out: delivered, or given up.
  virtual absl::Status Remove(const std::string& id) = 0;
  // Records a failed attempt: `attempts` made, the next at `next`.
  virtual absl::Status Retry(const std::string& id, int attempts, absl::Time next,
                             const std::string& error) = 0;
  // The webhooks of every job that still has them (job id -> targets, opened).
  virtual absl::StatusOr<std::map<std::string, std::vector<v1::Webhook>>> LoadJobWebhooks() = 0;
};

}  // namespace musafarm::coordinator
