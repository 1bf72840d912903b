// Core, notifications (issue 14, item 2): a job's webhooks are checked at
// submit and kept sealed while it runs; when it ends (or first fails, for the
// targets that ask) one delivery per target joins the mutation that records
// it, for WebhookSender to deliver from the outbox.
#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/logging.h"
#include "coordinator/core.h"
#include "coordinator/nightly_diff.h"
#include "coordinator/token_secret.h"
#include "coordinator/webhook_format.h"
#include "coordinator/webhook_targets.h"

namespace musafarm::coordinator {
namespace {

// What a failed task's notification quotes of its log.
constexpr uint64_t kTailBytes = 4096;
constexpr size_t kTailLines = 20;
// How far back a schedule's runs are searched for the previous one with a job.
constexpr int kPreviousRunsSearched = 20;

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("notify");
  return log;
}

std::string HexOf(const std::string& bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

}  // namespace

absl::Status Core::CheckWebhooks(const v1::SubmitRequest& request) const {
  for (const v1::Webhook& hook : request.webhooks()) {
    if (absl::Status s = CheckWebhookAllowed(hook.url(), options_.webhook_allow); !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

std::string Core::LogTail(const v1::Task& task) const {
  if (task.attempt_id() == 0) return "";
  const uint64_t size = logs_->Size(task.id(), task.attempt_id());
  const uint64_t from = size > kTailBytes ? size - kTailBytes : 0;
  absl::StatusOr<std::string> data = logs_->Read(task.id(), task.attempt_id(), from, kTailBytes);
  if (!data.ok()) return "";
  std::vector<std::string> lines = absl::StrSplit(*data, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  if (from > 0 && !lines.empty()) lines.erase(lines.begin());  // a partial first line
  if (lines.size() > kTailLines) lines.erase(lines.begin(), lines.end() - kTailLines);
  return absl::StrJoin(lines, "\n");
}

absl::StatusOr<v1::Job> Core::PreviousRun(const v1::Job& job) const {
  if (job.schedule().empty()) return absl::NotFoundError("not a schedule's run");
  absl::StatusOr<std::vector<v1::ScheduleRun>> runs =
      store_->schedules().LastRuns(job.schedule(), kPreviousRunsSearched);
  if (!runs.ok()) return runs.status();
  bool after_this = false;
  for (const v1::ScheduleRun& run : *runs) {  // newest first
    if (run.job_id() == job.id()) {
      after_this = true;
      continue;
    }
    if (after_this && !run.job_id().empty()) return GetJob(run.job_id());
  }
  return absl::NotFoundError(absl::StrCat("job ", job.id(), " has no previous run"));
}

void Core::QueueDeliveries(const v1::Job& job, const std::vector<v1::Webhook>& targets,
                           bool first_failure) {
  Notification n;
  n.event = first_failure ? Notification::Event::kFirstFailure : Notification::Event::kEnded;
  n.job = job;
  n.dashboard_url = options_.dashboard_url;
  for (const v1::Task& t : job.tasks()) {
    if (t.state() == v1::TASK_STATE_FAILED || t.state() == v1::TASK_STATE_TIMED_OUT) {
      n.log_tails[t.id()] = LogTail(t);
    }
  }
  // A schedule's run is compared with its previous run (item 3).
  if (!first_failure) {
    if (absl::StatusOr<v1::Job> previous = PreviousRun(job); previous.ok()) {
      n.diff = CompareRuns(*previous, job);
    }
  }
  for (const v1::Webhook& target : targets) {
    absl::StatusOr<std::string> random = RandomBytes(16);
    if (!random.ok()) {
      Log()->error("job={}: no notification id: {}", job.id(), random.status().ToString());
      continue;
    }
    WebhookDelivery d;
    d.id = HexOf(*random);
    d.job_id = job.id();
    d.url = target.url();
    d.body = WebhookBody(n, target.format());
    Log()->info("job={} notification {} to {} queued ({})", job.id(), d.id,
                RedactWebhookUrl(target.url()), first_failure ? "first failure" : "ended");
    pending_.mutation.deliveries.push_back(std::move(d));
  }
}

void Core::NotifyFirstFailure(const v1::Job& job) {
  auto it = webhooks_.find(job.id());
  if (it == webhooks_.end() || it->second.first_failure_sent) return;
  it->second.first_failure_sent = true;
  std::vector<v1::Webhook> targets;
  for (const v1::Webhook& hook : it->second.targets) {
    if (hook.on_first_failure()) targets.push_back(hook);
  }
  if (!targets.empty()) QueueDeliveries(job, targets, /*first_failure=*/true);
}

void Core::NotifyJobEnded(const v1::Job& job) {
  auto it = webhooks_.find(job.id());
  if (it == webhooks_.end()) return;
  QueueDeliveries(job, it->second.targets, /*first_failure=*/false);
  pending_.mutation.drop_webhooks.push_back(job.id());
  webhooks_.erase(it);
}

}  // namespace musafarm::coordinator
