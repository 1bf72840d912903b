#pragma once

// Pure functions from farm data to text: tables, durations, the lines of the
// watch views. Nothing here does I/O or reads a clock; `now` is passed in.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/task_state.h"  // TaskStateName, IsTerminal: shared with the coordinator
#include "musafarm/v1/farm.pb.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::cli {

// "850ms", "4.2s", "42s", "3m05s", "2h03m", "3d04h". Negative durations read "0s".
std::string HumanDuration(absl::Duration d);
// "12s ago"; "never" when `t` is the zero unix time.
std::string FormatAgo(absl::Time t, absl::Time now);
// "2024-05-01 13:04:05" in `tz`.
std::string FormatDateTime(absl::Time t, absl::TimeZone tz);
// "13:04:05" in `tz`.
std::string FormatClock(absl::Time t, absl::TimeZone tz);

// Lowercase names: "running", "cancelled"; "connected", "draining". Task
// states: TaskStateName in common/task_state.h.
std::string JobStateName(v1::JobState s);
std::string AgentStateName(v1::AgentState s);

// An agent's state for people: "connected", "disconnected", "draining", or
// "disconnected (draining)" for a drained agent that is away.
std::string AgentStatus(const v1::Agent& a);

bool IsJobEnded(v1::JobState s);

// "7/dev-3.8/base" -> "dev-3.8/base"; an id without '/' is returned as is.
std::string ShortTaskId(absl::string_view task_id);
// "7/dev-3.8/base" -> "7"; "7" -> "7".
std::string JobIdOf(absl::string_view id);

// How long the task has run (until it ended, or until `now`); nullopt when it
// has not started.
std::optional<absl::Duration> TaskElapsed(const v1::Task& t, absl::Time now);
// The job from creation to its end, or to `now` while running.
absl::Duration JobElapsed(const v1::Job& j, absl::Time now);

// A task's test counts for a table cell: "10 passed, 2 failed, 1 skipped,
// 1 error" (passed always, the others when not zero); "-" when the task has no
// test counts.
std::string TestsCell(const v1::Task& t);

using Row = std::vector<std::string>;

// Left-aligned columns, two spaces apart, widths from the widest cell; no
// trailing blanks. An empty cell reads "-". Rows shorter than the header are
// padded.
std::vector<std::string> RenderTable(const Row& header, const std::vector<Row>& rows);

// `musafarm jobs`: ID NAME STATE CREATED DURATION.
std::vector<std::string> RenderJobs(const std::vector<v1::Job>& jobs, absl::Time now,
                                    absl::TimeZone tz);

// A task's REASON: Task.reason, and for a queued task why it waits
// ("waits: no connected agent runs docker_build").
std::string TaskReason(const v1::Task& t);

// `musafarm status`: "job 7 (nightly) failed in 3m05s", a blank line, then the
// table TASK STATE AGENT ATTEMPT EXIT DURATION TESTS REASON and, when a task
// has artifacts, a blank line and RenderArtifactLines. With `only_task` set,
// the table and the artifacts are of that task only.
std::vector<std::string> RenderStatus(const v1::Job& job, absl::string_view only_task,
                                      absl::Time now);

// One line per task with artifacts, in job order:
// "artifacts: 7/dev-3.8/test: ut_output.txt (4 KiB), it_output.txt (1 KiB)".
// With `only_task` set, that task's line only.
std::vector<std::string> RenderArtifactLines(const v1::Job& job, absl::string_view only_task);

// `musafarm artifacts TASK`: NAME SIZE SOURCE.
std::vector<std::string> RenderArtifacts(const v1::Task& task);

// `musafarm agents`: NAME STATE SLOTS LABELS RUNNING LAST SEEN.
std::vector<std::string> RenderAgents(const std::vector<v1::Agent>& agents, absl::Time now);

// `musafarm coordinators`: ADDRESS ROLE EPOCH ACTIVE SINCE LAST SEEN ID, then
// a line when none is active.
std::vector<std::string> RenderCoordinators(const v1::ListCoordinatorsResponse& resp,
                                            absl::Time now, absl::TimeZone tz);

// One line of the job summary: "job 7 succeeded in 3m05s" once ended, else
// "job 7 running for 1m02s"; with `with_name` and a named job,
// "job 7 (nightly) succeeded in 3m05s".
std::string JobSummaryLine(const v1::Job& job, absl::Time now, bool with_name = false);

// The end of `musafarm watch`: TASK STATE AGENT DURATION EXIT TESTS, then the
// summary line.
std::vector<std::string> RenderResult(const v1::Job& job, absl::Time now);

// A plain (not a terminal) watch line for a task change:
// "13:04:05 dev-3.8/base running on agent-1", "... failed on a1 (exit code 2)",
// "... queued (waits: 2 matching agents busy)" (TaskReason); with `color`, the
// state in its colour (cli/color.h).
std::string RenderTaskChange(const v1::Task& task, absl::Time at, absl::TimeZone tz,
                             bool color = false);

// "[dev-3.8/base] line"
std::string PrefixLogLine(absl::string_view short_task, absl::string_view line);

// The live table of the terminal watch view: a summary line, then TASK STATE
// AGENT ELAPSED, plus TESTS once a shown task has test counts and the wider
// table fits in `width - 1` columns. At most `max_lines` lines (the rest
// summarised in a last line, active tasks shown first), each cut to
// `width - 1` columns so none wraps.
std::vector<std::string> RenderLiveTable(const v1::Job& job, absl::Time now, int width,
                                         int max_lines);

// The bytes that replace a live table of `prev_lines` lines (the cursor sits
// just below it) with `above` (printed once, e.g. log lines) and then `table`.
std::string LiveFrame(int prev_lines, const std::vector<std::string>& above,
                      const std::vector<std::string>& table);

// Splits log bytes of many tasks into complete lines, keeping each task's
// partial last line until more bytes or Flush(). A trailing '\r' is dropped.
// Not thread-safe.
class LogLineSplitter {
 public:
  // Appends each line of `task` that `data` completes to `out` as `prefix`,
  // the line and '\n': one buffer for a whole chunk, written with one call
  // (a chunk holds thousands of lines).
  void AppendLines(const std::string& task, absl::string_view data, absl::string_view prefix,
                   std::string* out);
  // Returns the lines of `task` completed by `data`, without their '\n'.
  std::vector<std::string> Append(const std::string& task, absl::string_view data);
  // Returns and forgets `task`'s partial line; empty when there is none.
  std::string FlushTask(const std::string& task);
  // Returns and forgets every partial line, as (task, line), ordered by task.
  std::vector<std::pair<std::string, std::string>> FlushAll();

 private:
  std::map<std::string, std::string> partial_;
};

}  // namespace musafarm::cli
