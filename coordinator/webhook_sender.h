#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/store.h"

namespace musafarm::coordinator {

struct WebhookSenderOptions {
  // Retries wait initial_backoff * 2^(attempts-1), at most max_backoff, with
  // jitter (the lower half of the wait is kept).
  absl::Duration initial_backoff = absl::Seconds(1);
  absl::Duration max_backoff = absl::Minutes(5);  // --webhook-retry-max
  // After this many attempts a delivery is given up (logged at ERROR).
  int max_attempts = 100;
  absl::Duration connect_timeout = absl::Seconds(5);
  absl::Duration request_timeout = absl::Seconds(10);
  // Verify https receivers against these CA certificates ("": the system's).
  std::string ca_file;
};

// Delivers the webhook outbox (coordinator/webhook_outbox.h) on one thread of
// its own with its own store connection, so a slow or dead receiver never
// holds the core loop. Each delivery is POSTed with its body, Content-Type
// application/json and `X-Musafarm-Delivery: <id>`; a 2xx answer takes it out
// of the outbox, anything else (no answer, 5xx, 408, 429) is retried with
// backoff, and another 4xx is given up at once. What is in the outbox when
// the coordinator is killed goes out after it starts again.
class WebhookSender {
 public:
  // `store`: a connection of the sender's own (the core's is not thread-safe).
  WebhookSender(std::unique_ptr<Store> store, WebhookSenderOptions options);
  ~WebhookSender();  // Stop()s
  WebhookSender(const WebhookSender&) = delete;
  WebhookSender& operator=(const WebhookSender&) = delete;

  void Start();
  // Thread-safe: new deliveries were committed; look now.
  void Wake();
  // Finishes the attempt in flight and joins. Idempotent.
  void Stop();

 private:
  void Loop();
  // Makes one attempt and records its outcome.
  void Attempt(const WebhookDelivery& d);

  const std::unique_ptr<Store> store_;  // used on the sender's thread only
  const WebhookSenderOptions options_;
  absl::Mutex mu_;
  bool woken_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace musafarm::coordinator
