#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "cli/render.h"
#include "musafarm/v1/farm.pb.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::cli {

// Tracks how much of one task's log has been taken, so that bytes sent twice
// (after a resume) are dropped. Logs are per attempt: bytes of a newer attempt
// start over; bytes of an older attempt are stale. Not thread-safe.
class LogCursor {
 public:
  // Returns the part of `data` (at `offset` of attempt `attempt_id`) not yet taken.
  absl::string_view Accept(uint64_t attempt_id, uint64_t offset, absl::string_view data);
  // Marks [0, consumed) of `attempt_id` as taken, e.g. after reading it with GetLog.
  void Seed(uint64_t attempt_id, uint64_t consumed);

  uint64_t attempt_id() const { return attempt_id_; }
  uint64_t consumed() const { return consumed_; }
  bool started() const { return started_; }

 private:
  bool started_ = false;
  uint64_t attempt_id_ = 0;
  uint64_t consumed_ = 0;
};

// Folds a WatchJob stream (possibly several, after resumes) into the job's
// current state and the lines to print. Pure: no I/O, no clock (`now` is
// passed in). Not thread-safe.
class WatchModel {
 public:
  struct Options {
    bool logs = false;
    // Plain mode prints a line per task change; live (terminal) mode leaves
    // task state to the live table and returns only log lines.
    bool live = false;
    absl::TimeZone tz = absl::UTCTimeZone();
    bool color = false;  // task states in colour (cli/color.h)
  };
  explicit WatchModel(Options opts) : opts_(opts) {}

  // Applies one event and returns the lines it prints: task changes (plain
  // mode) and complete log lines "[task] line" (with logs).
  std::vector<std::string> Apply(const v1::WatchEvent& ev, absl::Time now);
  // The same, appending the lines to `text`, each ending in '\n': what a
  // chunk of log prints, in one buffer.
  void ApplyText(const v1::WatchEvent& ev, absl::Time now, std::string* text);

  // Returns the partial log lines still buffered, prefixed; call once at the end.
  std::vector<std::string> FlushLogs();

  // Resume points for the next WatchJob: per task, log bytes already taken of
  // the task's current attempt. A task whose attempt moved on since is left
  // out, so that the new attempt's log is sent from its start.
  std::map<std::string, uint64_t> LogOffsets() const;

  bool has_snapshot() const { return has_snapshot_; }
  bool finished() const { return finished_; }
  const v1::Job& job() const { return job_; }

  // 0 once the job succeeded, 1 if it failed or was cancelled.
  int ExitCode() const;

 private:
  // Replaces the job (snapshot or finished), reporting tasks whose state changed.
  void ReplaceJob(const v1::Job& job, absl::Time now, std::string* out);
  void UpdateTask(const v1::Task& task, absl::Time now, std::string* out);
  void TakeLog(const v1::LogData& log, std::string* out);

  Options opts_;
  v1::Job job_;
  // Where each task id is in job_.tasks(): a change is found in O(1), not by a
  // scan (a 500-task job's 1,500 changes were 750,000 id compares).
  std::unordered_map<std::string, int> index_;
  bool has_snapshot_ = false;
  bool finished_ = false;
  std::map<std::string, LogCursor> cursors_;
  LogLineSplitter splitter_;
};

}  // namespace musafarm::cli
