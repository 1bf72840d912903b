#include "coordinator/webhook_sender.h"

#include <algorithm>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "coordinator/webhook_targets.h"
#include "httplib.h"

namespace musafarm::coordinator {
namespace {

// Deliveries taken from the outbox per look.
constexpr int kBatch = 16;
// A look at the outbox at least this often, in case a wake-up was missed
// (another process, a clock step).
constexpr absl::Duration kIdleLook = absl::Seconds(5);

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("webhooks");
  return log;
}

absl::Duration Backoff(const WebhookSenderOptions& o, int attempts) {
  absl::Duration wait = o.initial_backoff;
  for (int i = 1; i < attempts && wait < o.max_backoff; ++i) wait *= 2;
  wait = std::min(wait, o.max_backoff);
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  std::uniform_real_distribution<double> half(0.5, 1.0);
  return wait * half(rng);
}

}  // namespace

WebhookSender::WebhookSender(std::unique_ptr<Store> store, WebhookSenderOptions options)
    : store_(std::move(store)), options_(std::move(options)) {}

WebhookSender::~WebhookSender() { Stop(); }

void WebhookSender::Start() {
  thread_ = std::thread([this] { Loop(); });
}

void WebhookSender::Wake() {
  absl::MutexLock lock(&mu_);
  woken_ = true;
}

void WebhookSender::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void WebhookSender::Attempt(const WebhookDelivery& d) {
  WebhookOutbox& outbox = store_->webhooks();
  const std::string target = RedactWebhookUrl(d.url);
  std::string error;
  bool give_up = false;
  absl::StatusOr<WebhookUrl> url = ParseWebhookUrl(d.url);
  if (!url.ok()) {
    error = std::string(url.status().message());
    give_up = true;
  } else {
    httplib::Client http(absl::StrCat(url->scheme, "://", url->host));
    http.set_connection_timeout(absl::ToChronoSeconds(options_.connect_timeout));
    http.set_read_timeout(absl::ToChronoSeconds(options_.request_timeout));
    http.set_write_timeout(absl::ToChronoSeconds(options_.request_timeout));
    if (!options_.ca_file.empty()) http.set_ca_cert_path(options_.ca_file.c_str());
    http.enable_server_certificate_verification(true);
    const httplib::Headers headers = {{"X-Musafarm-Delivery", d.id},
                                      {"User-Agent", "musafarm-coordinator"}};
    httplib::Result r = http.Post(url->path.c_str(), headers, d.body, "application/json");
    if (r && r->status >= 200 && r->status < 300) {
      Log()->info("notification {} of job {} delivered to {} (attempt {})", d.id, d.job_id,
                  target, d.attempts + 1);
      if (absl::Status s = outbox.Remove(d.id); !s.ok()) {
        // It stays and goes again: the receiver drops it by its id.
        Log()->error("notification {}: delivered but still in the outbox: {}", d.id, s.ToString());
      }
      return;
    }
    if (r) {
      error = absl::StrCat("HTTP ", r->status);
      give_up = r->status >= 400 && r->status < 500 && r->status != 408 && r->status != 429;
    } else {
      error = httplib::to_string(r.error());
    }
  }
  const int attempts = d.attempts + 1;
  if (give_up || attempts >= options_.max_attempts) {
    Log()->error("notification {} of job {} to {} given up after {} attempt(s): {}", d.id,
                 d.job_id, target, attempts, error);
    if (absl::Status s = outbox.Remove(d.id); !s.ok()) Log()->error("{}", s.ToString());
    return;
  }
  const absl::Duration wait = Backoff(options_, attempts);
  Log()->warn("notification {} of job {} to {}: {}; retry {} in {}", d.id, d.job_id, target, error,
              attempts, absl::FormatDuration(wait));
  if (absl::Status s = outbox.Retry(d.id, attempts, absl::Now() + wait, error); !s.ok()) {
    Log()->error("notification {}: {}", d.id, s.ToString());
  }
}

void WebhookSender::Loop() {
  WebhookOutbox& outbox = store_->webhooks();
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
      woken_ = false;
    }
    absl::StatusOr<std::vector<WebhookDelivery>> due = outbox.Due(absl::Now(), kBatch);
    if (!due.ok()) Log()->error("webhook outbox: {}", due.status().ToString());
    if (due.ok()) {
      for (const WebhookDelivery& d : *due) {
        {
          absl::MutexLock lock(&mu_);
          if (stop_) return;
        }
        Attempt(d);
      }
      if (static_cast<int>(due->size()) == kBatch) continue;  // more may be due
    }
    absl::StatusOr<absl::Time> next = outbox.NextDue();
    absl::Time until = absl::Now() + kIdleLook;
    if (next.ok()) until = std::min(until, *next);
    absl::MutexLock lock(&mu_);
    auto ready = [this] {
      mu_.AssertHeld();
      return stop_ || woken_;
    };
    mu_.AwaitWithDeadline(absl::Condition(&ready), until);
  }
}

}  // namespace musafarm::coordinator
