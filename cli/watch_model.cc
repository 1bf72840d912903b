#include "cli/watch_model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "cli/client.h"

namespace musafarm::cli {
namespace {

// What earns a line in a plain watch: a new state or attempt, or a queued
// task waiting for another reason.
bool Changed(const v1::Task& before, const v1::Task& now) {
  return before.state() != now.state() || before.attempt_id() != now.attempt_id() ||
         (now.state() == v1::TASK_STATE_QUEUED && before.wait_reason() != now.wait_reason());
}

}  // namespace

absl::string_view LogCursor::Accept(uint64_t attempt_id, uint64_t offset, absl::string_view data) {
  if (started_ && attempt_id < attempt_id_) return {};  // a late chunk of an older attempt
  if (!started_ || attempt_id > attempt_id_) {
    started_ = true;
    attempt_id_ = attempt_id;
    consumed_ = 0;
  }
  const uint64_t end = offset + data.size();
  if (end <= consumed_) return {};
  // Bytes below consumed_ were taken already; a gap above it (the server
  // dropped bytes) cannot be filled, so take what came.
  if (offset < consumed_) data.remove_prefix(static_cast<size_t>(consumed_ - offset));
  consumed_ = end;
  return data;
}

void LogCursor::Seed(uint64_t attempt_id, uint64_t consumed) {
  started_ = true;
  attempt_id_ = attempt_id;
  consumed_ = consumed;
}

std::vector<std::string> WatchModel::Apply(const v1::WatchEvent& ev, absl::Time now) {
  std::string text;
  ApplyText(ev, now, &text);
  std::vector<std::string> lines;
  for (size_t start = 0, nl = text.find('\n'); nl != std::string::npos;
       start = nl + 1, nl = text.find('\n', start)) {
    lines.push_back(text.substr(start, nl - start));
  }
  return lines;
}

void WatchModel::ApplyText(const v1::WatchEvent& ev, absl::Time now, std::string* text) {
  switch (ev.kind_case()) {
    case v1::WatchEvent::kSnapshot:
      ReplaceJob(ev.snapshot(), now, text);
      has_snapshot_ = true;
      break;
    case v1::WatchEvent::kTask:
      UpdateTask(ev.task(), now, text);
      break;
    case v1::WatchEvent::kLog:
      if (opts_.logs) TakeLog(ev.log(), text);
      break;
    case v1::WatchEvent::kFinished:
      ReplaceJob(ev.finished(), now, text);
      has_snapshot_ = true;
      finished_ = true;
      break;
    case v1::WatchEvent::KIND_NOT_SET:
      break;  // a kind this client does not know: newer server
  }
}

void WatchModel::ReplaceJob(const v1::Job& job, absl::Time now, std::string* out) {
  // Report tasks whose state changed since what we knew (after a resume, the
  // changes missed while disconnected; at the start, every task).
  std::map<std::string, const v1::Task*> known;
  for (const v1::Task& t : job_.tasks()) known[t.id()] = &t;
  if (!opts_.live) {
    for (const v1::Task& t : job.tasks()) {
      auto it = known.find(t.id());
      if (it == known.end() || Changed(*it->second, t)) {
        absl::StrAppend(out, RenderTaskChange(t, now, opts_.tz, opts_.color), "\n");
      }
    }
  }
  job_ = job;
  index_.clear();
  for (int i = 0; i < job_.tasks_size(); ++i) index_[job_.tasks(i).id()] = i;
}

void WatchModel::UpdateTask(const v1::Task& task, absl::Time now, std::string* out) {
  auto [it, added] = index_.try_emplace(task.id(), job_.tasks_size());
  const bool changed = added || Changed(job_.tasks(it->second), task);
  v1::Task* slot = added ? job_.add_tasks() : job_.mutable_tasks(it->second);
  // A change asked for without specs (WatchJobRequest.without_specs) keeps
  // the spec the snapshot brought.
  const bool keep_spec = !task.has_spec() && slot->has_spec();
  v1::TaskSpec spec;
  if (keep_spec) spec.Swap(slot->mutable_spec());
  *slot = task;
  if (keep_spec) slot->mutable_spec()->Swap(&spec);
  if (changed && !opts_.live) {
    absl::StrAppend(out, RenderTaskChange(task, now, opts_.tz, opts_.color), "\n");
  }
}

void WatchModel::TakeLog(const v1::LogData& log, std::string* out) {
  LogCursor& cursor = cursors_[log.task_id()];
  const uint64_t before = cursor.attempt_id();
  const bool was_started = cursor.started();
  absl::string_view fresh = cursor.Accept(log.attempt_id(), log.offset(), log.data());
  const std::string prefix = PrefixLogLine(ShortTaskId(log.task_id()), "");
  if (was_started && cursor.attempt_id() != before) {
    // A new attempt: the old attempt's unfinished line ends here.
    if (std::string rest = splitter_.FlushTask(log.task_id()); !rest.empty()) {
      absl::StrAppend(out, prefix, rest, "\n");
    }
  }
  if (fresh.empty()) return;
  splitter_.AppendLines(log.task_id(), fresh, prefix, out);
}

std::vector<std::string> WatchModel::FlushLogs() {
  std::vector<std::string> out;
  for (auto& [task, rest] : splitter_.FlushAll()) {
    out.push_back(PrefixLogLine(ShortTaskId(task), rest));
  }
  return out;
}

std::map<std::string, uint64_t> WatchModel::LogOffsets() const {
  std::map<std::string, uint64_t> offsets;
  for (const auto& [task, cursor] : cursors_) {
    if (!cursor.started()) continue;
    bool current = true;
    for (const v1::Task& t : job_.tasks()) {
      if (t.id() == task) {
        current = t.attempt_id() == cursor.attempt_id();
        break;
      }
    }
    if (current) offsets[task] = cursor.consumed();
  }
  return offsets;
}

int WatchModel::ExitCode() const {
  switch (job_.state()) {
    case v1::JOB_STATE_FAILED:
    case v1::JOB_STATE_CANCELLED:
      return kExitJobFailed;
    default:
      return kExitOk;
  }
}

}  // namespace musafarm::cli
