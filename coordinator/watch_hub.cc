#include "coordinator/watch_hub.h"

#include <algorithm>
#include <utility>

namespace musafarm::coordinator {
namespace {

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

v1::WatchEvent TaskEvent(const v1::Task& task, bool without_spec) {
  v1::WatchEvent ev;
  if (without_spec) {
    CopyTaskWithoutSpec(task, ev.mutable_task());
  } else {
    *ev.mutable_task() = task;
  }
  return ev;
}

}  // namespace

void CopyTaskWithoutSpec(const v1::Task& from, v1::Task* to) {
  // Field by field: copying the whole task and clearing its spec would copy
  // the spec first, which is most of what this saves. watch_hub_test checks
  // every field but the spec arrives, so a field added to Task cannot be
  // missed here silently.
  to->set_id(from.id());
  to->set_job_id(from.job_id());
  to->set_state(from.state());
  to->set_attempt_id(from.attempt_id());
  to->set_attempts(from.attempts());
  to->set_agent(from.agent());
  to->set_exit_code(from.exit_code());
  to->set_reason(from.reason());
  to->set_created_us(from.created_us());
  to->set_started_us(from.started_us());
  to->set_ended_us(from.ended_us());
  to->set_log_size(from.log_size());
  to->set_cancel_requested_us(from.cancel_requested_us());
  to->set_lost_count(from.lost_count());
  if (from.has_tests()) *to->mutable_tests() = from.tests();
  *to->mutable_artifacts() = from.artifacts();
  *to->mutable_gpu_ids() = from.gpu_ids();
  to->set_handed_back_count(from.handed_back_count());
  if (from.has_created_time()) *to->mutable_created_time() = from.created_time();
  if (from.has_started_time()) *to->mutable_started_time() = from.started_time();
  if (from.has_ended_time()) *to->mutable_ended_time() = from.ended_time();
  if (from.has_cancel_requested_time()) {
    *to->mutable_cancel_requested_time() = from.cancel_requested_time();
  }
  to->set_log_truncated(from.log_truncated());
  to->set_wait_reason(from.wait_reason());
}

uint64_t& WatchHub::Entry::SentFor(const std::string& task, uint64_t attempt) {
  Sent& s = sent[task];
  if (s.attempt != attempt) {
    // Behind, the earlier attempt's log may not have reached the watcher to
    // its end yet: it is caught up before the new one.
    if (behind && s.attempt != 0) stale.emplace_back(task, s);
    s = Sent{attempt, 0};
  }
  return s.bytes;
}

void WatchHub::Add(WatchId id, const v1::WatchJobRequest& request, const v1::Job& job,
                   std::shared_ptr<Watcher> watcher) {
  Entry w;
  w.job_id = request.job_id();
  w.task_id = request.task_id();
  w.logs = request.logs();
  w.without_specs = request.without_specs();
  w.watcher = std::move(watcher);
  v1::WatchEvent snapshot;
  *snapshot.mutable_snapshot() = job;
  if (!w.task_id.empty()) snapshot.mutable_snapshot()->clear_tasks();
  for (const v1::Task& task : job.tasks()) {
    if (!w.task_id.empty() && w.task_id == task.id()) {
      *snapshot.mutable_snapshot()->add_tasks() = task;
    }
    if (!w.logs || !w.Wants(task) || task.attempt_id() == 0) continue;
    // Resume offsets refer to the attempt current now.
    Sent s{task.attempt_id(), 0};
    auto offset = request.log_offsets().find(task.id());
    if (offset != request.log_offsets().end()) s.bytes = offset->second;
    w.sent[task.id()] = s;
    w.lagging.insert(task.id());
  }
  w.watcher->Send(std::move(snapshot));
  if (job.state() != v1::JOB_STATE_RUNNING) w.held_end = job;
  if (CatchUp(w)) return;  // an ended job, all sent
  watchers_[id] = std::move(w);
}

void WatchHub::Resume(WatchId id) {
  auto it = watchers_.find(id);
  if (it == watchers_.end()) return;
  Entry& w = it->second;
  if (w.asked_at) {
    w.paces = KeepsUp(w, clock_->Now());
    w.asked_at.reset();
  }
  w.holding = false;
  if (!w.behind) return;
  if (CatchUp(w)) watchers_.erase(it);
}

bool WatchHub::HoldsAcks(const v1::Task& task) {
  for (auto& [id, w] : watchers_) {
    if (!w.logs || !w.paces || !w.Wants(task)) continue;
    if (w.holding) return true;
    if (w.behind) {
      // Its catch-up's drain notice ends the hold.
      w.holding = true;
      return true;
    }
    if (w.watcher->UnwrittenLogBytes() >= kPace) {
      w.holding = true;
      AskDrain(w, kPace / 2);
      return true;
    }
  }
  return false;
}

bool WatchHub::Judge() {
  const absl::Time now = clock_->Now();
  bool ended = false;
  for (auto& [id, w] : watchers_) {
    if (!w.asked_at || KeepsUp(w, now)) continue;
    w.paces = false;  // until a drain notice finds it fast, or it is current again
    ended = ended || w.holding;
    w.holding = false;
  }
  return ended;
}

bool WatchHub::KeepsUp(const Entry& w, absl::Time now) const {
  const absl::Duration took = now - *w.asked_at;
  if (took < kJudgeAfter) return true;
  const uint64_t unwritten = w.watcher->UnwrittenLogBytes();
  const uint64_t written = w.owed > unwritten ? w.owed - unwritten : 0;
  return static_cast<double>(written) >= absl::ToDoubleSeconds(took) * kMinRate;
}

void WatchHub::AskDrain(Entry& w, uint64_t at_most) {
  if (!w.asked_at) {
    w.asked_at = clock_->Now();
    w.owed = w.watcher->UnwrittenLogBytes();
  }
  w.watcher->RequestDrainNotice(at_most);
}

void WatchHub::SendLog(Entry& w, v1::WatchEvent ev) {
  if (w.asked_at) w.owed += ev.log().data().size();
  w.watcher->Send(std::move(ev));
}

WatchHub::Sending WatchHub::SendStored(Entry& w, const std::string& task, Sent& s,
                                      bool one_message) {
  const uint64_t size = logs_->Size(task, s.attempt);
  while (s.bytes < size) {
    if (w.watcher->UnwrittenLogBytes() >= kWindow) {
      FallBehind(w);
      return Sending::kFull;
    }
    absl::StatusOr<std::string> data =
        logs_->Read(task, s.attempt, s.bytes, std::min(kCatchUpChunk, size - s.bytes));
    // Gone meanwhile (retention removed the task): nothing more to send.
    if (!data.ok() || data->empty()) break;
    const uint64_t at = s.bytes;
    s.bytes += data->size();
    SendLog(w, LogEvent(task, s.attempt, at, *std::move(data)));
    if (one_message) return s.bytes < size ? Sending::kMore : Sending::kDone;
  }
  return Sending::kDone;
}

bool WatchHub::CatchUp(Entry& w) {
  w.behind = false;
  while (!w.stale.empty()) {
    const Sending done =
        SendStored(w, w.stale.front().first, w.stale.front().second, /*one_message=*/false);
    if (done == Sending::kFull) return false;
    w.stale.pop_front();
  }
  // Round robin over the lagging tasks, one message a turn (class comment).
  // The store only grows on this thread, so every task runs out.
  while (!w.lagging.empty()) {
    auto it = w.lagging.upper_bound(w.last_turn);
    if (it == w.lagging.end()) it = w.lagging.begin();
    auto s = w.sent.find(*it);
    const Sending more = s == w.sent.end()
                             ? Sending::kDone
                             : SendStored(w, *it, s->second, /*one_message=*/true);
    if (more == Sending::kFull) return false;  // its turn again at the next Resume
    w.last_turn = *it;
    if (more == Sending::kDone) w.lagging.erase(it);
  }
  w.paces = true;  // current again: it may hold the farm again (class comment)
  for (auto& [id, task] : w.held_tasks) {
    v1::WatchEvent ev;
    *ev.mutable_task() = std::move(task);  // held as the watcher gets it
    w.watcher->Send(std::move(ev));
  }
  w.held_tasks.clear();
  if (!w.held_end) return false;
  End(w, *w.held_end);
  return true;
}

void WatchHub::FallBehind(Entry& w) {
  w.behind = true;
  AskDrain(w, kWindow / 2);
}

void WatchHub::End(Entry& w, const v1::Job& job) {
  v1::WatchEvent ev;
  *ev.mutable_finished() = job;
  w.watcher->SendLast(std::move(ev), absl::OkStatus());
}

void WatchHub::PublishTask(const v1::Task& task) {
  for (auto& [id, w] : watchers_) {
    if (!w.Wants(task)) continue;
    v1::WatchEvent ev = TaskEvent(task, w.without_specs);
    if (w.behind) {
      // Sent after the logs, latest state only.
      w.held_tasks[task.id()] = std::move(*ev.mutable_task());
      continue;
    }
    w.watcher->Send(std::move(ev));
  }
}

void WatchHub::PublishLog(const v1::Task& task, uint64_t attempt, uint64_t offset,
                          absl::string_view data) {
  for (auto& [id, w] : watchers_) {
    if (!w.logs || !w.Wants(task)) continue;
    uint64_t& sent = w.SentFor(task.id(), attempt);
    if (w.behind) {
      w.lagging.insert(task.id());  // read from the store once it drains
      continue;
    }
    const uint64_t end = offset + data.size();
    if (end <= sent) continue;
    const uint64_t skip = sent > offset ? sent - offset : 0;
    sent = end;
    SendLog(w, LogEvent(task.id(), attempt, offset + skip, std::string(data.substr(skip))));
    if (w.watcher->UnwrittenLogBytes() >= kWindow) FallBehind(w);
  }
}

void WatchHub::PublishJobEnd(const v1::Job& job) {
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    if (it->second.job_id != job.id()) {
      ++it;
      continue;
    }
    if (it->second.behind) {
      // Its logs first: ended when they are sent (Resume).
      it->second.held_end = job;
      ++it;
      continue;
    }
    End(it->second, job);
    it = watchers_.erase(it);
  }
}

void WatchHub::FinishAll(const absl::Status& why) {
  for (auto& [id, w] : watchers_) w.watcher->Finish(why);
  watchers_.clear();
}

}  // namespace musafarm::coordinator
