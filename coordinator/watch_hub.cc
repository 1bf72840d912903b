#include "coordinator/watch_hub.h"

#include <algorithm>
#include <utility>

namespace musafarm::coordinator {
namespace {
constexpr uint64_t kWatchCatchUpChunk = 1 << 20;

v1::WatchEvent LogEvent(const std::string& task_id, uint64_t attempt, uint64_t offset,
                        std::string data) {
  v1::WatchEvent ev;
  v1::LogData* log = ev.mutable_log();
  log->set_task_id(task_id);
  log->set_attempt_id(attempt);
  log->set_offset(offset);
  log->set_data(std::move(data));
  return ev;
}
}  // namespace

void WatchHub::Add(WatchId id, const v1::WatchJobRequest& request, const v1::Job& job,
                   std::shared_ptr<Watcher> watcher) {
  Entry w;
  w.job_id = request.job_id();
  w.task_id = request.task_id();
  w.logs = request.logs();
  w.watcher = std::move(watcher);
  v1::WatchEvent snapshot;
  *snapshot.mutable_snapshot() = job;
  if (!w.task_id.empty()) snapshot.mutable_snapshot()->clear_tasks();
  for (const v1::Task& task : job.tasks()) {
    // Resume offsets refer to the attempt current now.
    auto offset = request.log_offsets().find(task.id());
    if (offset != request.log_offsets().end()) {
      w.sent[task.id()] = Entry::Sent{task.attempt_id(), offset->second};
    }
    if (!w.task_id.empty() && w.task_id == task.id()) {
      *snapshot.mutable_snapshot()->add_tasks() = task;
    }
  }
  w.watcher->Send(std::move(snapshot));
  if (w.logs) {
    for (const v1::Task& task : job.tasks()) {
      if (w.Wants(task)) CatchUpLogs(w, task);
    }
  }
  if (job.state() != v1::JOB_STATE_RUNNING) {
    v1::WatchEvent ev;
    *ev.mutable_finished() = job;
    w.watcher->Send(std::move(ev));
    w.watcher->Finish(absl::OkStatus());
    return;
  }
  watchers_[id] = std::move(w);
}

void WatchHub::CatchUpLogs(Entry& w, const v1::Task& task) {
  if (task.attempt_id() == 0) return;
  uint64_t& sent = w.SentFor(task.id(), task.attempt_id());
  uint64_t offset = sent;
  const uint64_t size = logs_->Size(task.id(), task.attempt_id());
  while (offset < size) {
    absl::StatusOr<std::string> data =
        logs_->Read(task.id(), task.attempt_id(), offset, kWatchCatchUpChunk);
    if (!data.ok() || data->empty()) break;
    const uint64_t at = offset;
    offset += data->size();
    w.watcher->Send(LogEvent(task.id(), task.attempt_id(), at, *std::move(data)));
  }
  sent = std::max(offset, sent);
}

void WatchHub::PublishTask(const v1::Task& task) {
  for (auto& [id, w] : watchers_) {
    if (!w.Wants(task)) continue;
    v1::WatchEvent ev;
    *ev.mutable_task() = task;
    w.watcher->Send(std::move(ev));
  }
}

void WatchHub::PublishLog(const v1::Task& task, uint64_t attempt, uint64_t offset,
                          const std::string& data) {
  for (auto& [id, w] : watchers_) {
    if (!w.logs || !w.Wants(task)) continue;
    uint64_t& sent = w.SentFor(task.id(), attempt);
    const uint64_t end = offset + data.size();
    if (end <= sent) continue;
    const uint64_t skip = sent > offset ? sent - offset : 0;
    sent = end;
    w.watcher->Send(LogEvent(task.id(), attempt, offset + skip, data.substr(skip)));
  }
}

void WatchHub::PublishJobEnd(const v1::Job& job) {
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    if (it->second.job_id != job.id()) {
      ++it;
      continue;
    }
    v1::WatchEvent ev;
    *ev.mutable_finished() = job;
    it->second.watcher->Send(std::move(ev));
    it->second.watcher->Finish(absl::OkStatus());
    it = watchers_.erase(it);
  }
}

void WatchHub::FinishAll(const absl::Status& why) {
  for (auto& [id, w] : watchers_) w.watcher->Finish(why);
  watchers_.clear();
}

}  // namespace musafarm::coordinator
