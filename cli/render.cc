#include "cli/render.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "cli/color.h"
#include "common/bounded_text.h"
#include "common/format_bytes.h"
#include "common/stage_kind.h"
#include "google/protobuf/util/time_util.h"

namespace musafarm::cli {
namespace {

absl::Time FromMicros(int64_t us) { return absl::FromUnixMicros(us); }

// Text from the coordinator (names, labels, reasons) as the terminal may show
// it: control characters escaped, whole (issue 12). A coordinator refuses
// such names today, but rows stored before, or another server, may hold them.
std::string Shown(absl::string_view s) { return Printable(s, s.size()); }

// Display width of UTF-8 text: counts code points, not bytes.
size_t DisplayWidth(absl::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// Cuts `s` to at most `width` code points.
std::string Truncate(absl::string_view s, size_t width) {
  size_t cps = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (cps == width) return std::string(s.substr(0, i));
      ++cps;
    }
  }
  return std::string(s);
}

std::string ElapsedCell(const v1::Task& t, absl::Time now) {
  std::optional<absl::Duration> d = TaskElapsed(t, now);
  return d ? HumanDuration(*d) : "-";
}

// Exit codes mean something only once a process has run to its end.
std::string ExitCell(const v1::Task& t) {
  if (t.state() == v1::TASK_STATE_SUCCEEDED || t.state() == v1::TASK_STATE_FAILED) {
    return absl::StrCat(t.exit_code());
  }
  return "-";
}

// Agent of a task that has one; queued or skipped tasks may carry a stale one.
std::string AgentCell(const v1::Task& t) {
  switch (t.state()) {
    case v1::TASK_STATE_PENDING:
    case v1::TASK_STATE_QUEUED:
    case v1::TASK_STATE_SKIPPED:
      return "";
    default:
      return t.agent();
  }
}

// "ut_output.txt (4 KiB), it_output.txt (1 KiB)"
std::string ArtifactList(const v1::Task& t) {
  std::string s;
  for (const v1::Artifact& a : t.artifacts()) {
    absl::StrAppend(&s, s.empty() ? "" : ", ", a.name(), " (", FormatBytes(a.size()), ")");
  }
  return s;
}

}  // namespace

std::string TestsCell(const v1::Task& t) {
  if (!t.has_tests()) return "-";
  const v1::TestCounts& c = t.tests();
  std::string s = absl::StrCat(c.passed(), " passed");
  if (c.failed() != 0) absl::StrAppend(&s, ", ", c.failed(), " failed");
  if (c.skipped() != 0) absl::StrAppend(&s, ", ", c.skipped(), " skipped");
  if (c.errors() != 0) {
    absl::StrAppend(&s, ", ", c.errors(), c.errors() == 1 ? " error" : " errors");
  }
  return s;
}

std::string HumanDuration(absl::Duration d) {
  if (d < absl::ZeroDuration()) d = absl::ZeroDuration();
  const int64_t ms = absl::ToInt64Milliseconds(d);
  if (ms == 0) return "0s";
  if (ms < 1000) return absl::StrCat(ms, "ms");
  if (ms < 10'000) return absl::StrCat(ms / 1000, ".", (ms % 1000) / 100, "s");
  const int64_t s = ms / 1000;
  if (s < 60) return absl::StrCat(s, "s");
  if (s < 3600) return absl::StrFormat("%dm%02ds", s / 60, s % 60);
  if (s < 86400) return absl::StrFormat("%dh%02dm", s / 3600, (s % 3600) / 60);
  return absl::StrFormat("%dd%02dh", s / 86400, (s % 86400) / 3600);
}

std::string FormatAgo(absl::Time t, absl::Time now) {
  if (t == absl::UnixEpoch()) return "never";
  const absl::Duration d = now - t;
  if (d < absl::Seconds(1)) return "just now";
  if (d < absl::Minutes(1)) return absl::StrCat(absl::ToInt64Seconds(d), "s ago");
  return absl::StrCat(HumanDuration(d), " ago");
}

std::string FormatDateTime(absl::Time t, absl::TimeZone tz) {
  return absl::FormatTime("%Y-%m-%d %H:%M:%S", t, tz);
}

std::string FormatClock(absl::Time t, absl::TimeZone tz) {
  return absl::FormatTime("%H:%M:%S", t, tz);
}

std::string JobStateName(v1::JobState s) {
  switch (s) {
    case v1::JOB_STATE_RUNNING:
      return "running";
    case v1::JOB_STATE_SUCCEEDED:
      return "succeeded";
    case v1::JOB_STATE_FAILED:
      return "failed";
    case v1::JOB_STATE_CANCELLED:
      return "cancelled";
    default:
      return absl::StrCat("unknown(", static_cast<int>(s), ")");
  }
}

std::string AgentStateName(v1::AgentState s) {
  switch (s) {
    case v1::AGENT_STATE_CONNECTED:
      return "connected";
    case v1::AGENT_STATE_DISCONNECTED:
      return "disconnected";
    case v1::AGENT_STATE_DRAINING:
      return "draining";
    default:
      return absl::StrCat("unknown(", static_cast<int>(s), ")");
  }
}

std::string AgentStatus(const v1::Agent& a) {
  if (a.revoked()) return "revoked";  // refused at every connect: nothing else matters
  if (!a.draining() || a.state() == v1::AGENT_STATE_DRAINING) return AgentStateName(a.state());
  if (a.state() == v1::AGENT_STATE_CONNECTED) return "draining";
  return absl::StrCat(AgentStateName(a.state()), " (draining)");
}

bool IsJobEnded(v1::JobState s) {
  return s == v1::JOB_STATE_SUCCEEDED || s == v1::JOB_STATE_FAILED || s == v1::JOB_STATE_CANCELLED;
}

std::string ShortTaskId(absl::string_view task_id) {
  const size_t slash = task_id.find('/');
  if (slash == absl::string_view::npos) return std::string(task_id);
  return std::string(task_id.substr(slash + 1));
}

std::string JobIdOf(absl::string_view id) { return std::string(id.substr(0, id.find('/'))); }

std::optional<absl::Duration> TaskElapsed(const v1::Task& t, absl::Time now) {
  if (t.started_us() == 0) return std::nullopt;
  const absl::Time end = t.ended_us() != 0 ? FromMicros(t.ended_us()) : now;
  return std::max(end - FromMicros(t.started_us()), absl::ZeroDuration());
}

absl::Duration JobElapsed(const v1::Job& j, absl::Time now) {
  if (j.created_us() == 0) return absl::ZeroDuration();
  const absl::Time end = j.ended_us() != 0 ? FromMicros(j.ended_us()) : now;
  return std::max(end - FromMicros(j.created_us()), absl::ZeroDuration());
}

std::vector<std::string> RenderTable(const Row& header, const std::vector<Row>& rows) {
  const size_t cols = header.size();
  std::vector<size_t> width(cols, 0);
  auto cell = [&](const Row& r, size_t i) -> std::string {
    if (i >= r.size() || r[i].empty()) return "-";
    return Shown(r[i]);
  };
  for (size_t i = 0; i < cols; ++i) width[i] = DisplayWidth(header[i]);
  for (const Row& r : rows) {
    for (size_t i = 0; i < cols; ++i) width[i] = std::max(width[i], DisplayWidth(cell(r, i)));
  }
  std::vector<std::string> lines;
  lines.reserve(rows.size() + 1);
  auto emit = [&](const Row& r, bool is_header) {
    std::string line;
    for (size_t i = 0; i < cols; ++i) {
      std::string c = is_header ? header[i] : cell(r, i);
      if (i + 1 < cols) c.append(width[i] - DisplayWidth(c) + 2, ' ');
      line += c;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    lines.push_back(std::move(line));
  };
  emit(header, true);
  for (const Row& r : rows) emit(r, false);
  return lines;
}

std::vector<std::string> RenderJobs(const std::vector<v1::Job>& jobs, absl::Time now,
                                    absl::TimeZone tz) {
  // The submitter column only when a job has one (farms from before users
  // record none).
  bool submitters = false;
  bool reruns = false;  // likewise the RERUN OF column
  for (const v1::Job& j : jobs) {
    submitters = submitters || !j.submitter().empty();
    reruns = reruns || !j.rerun_of().empty();
  }
  std::vector<Row> rows;
  for (const v1::Job& j : jobs) {
    rows.push_back({j.id(), j.name(), JobStateName(j.state()),
                    j.created_us() ? FormatDateTime(FromMicros(j.created_us()), tz) : "",
                    HumanDuration(JobElapsed(j, now))});
    if (submitters) rows.back().push_back(j.submitter());
    if (reruns) rows.back().push_back(j.rerun_of());
  }
  Row header = {"ID", "NAME", "STATE", "CREATED", "DURATION"};
  if (submitters) header.push_back("SUBMITTER");
  if (reruns) header.push_back("RERUN OF");
  return RenderTable(header, rows);
}

std::string JobSummaryLine(const v1::Job& job, absl::Time now, bool with_name) {
  std::string s = absl::StrCat("job ", job.id());
  if (with_name && !job.name().empty()) absl::StrAppend(&s, " (", Shown(job.name()), ")");
  absl::StrAppend(&s, " ", JobStateName(job.state()), IsJobEnded(job.state()) ? " in " : " for ",
                  HumanDuration(JobElapsed(job, now)));
  return s;
}

std::string TaskReason(const v1::Task& t) {
  if (t.state() != v1::TASK_STATE_QUEUED || t.wait_reason().empty()) return t.reason();
  if (t.reason().empty()) return absl::StrCat("waits: ", t.wait_reason());
  return absl::StrCat(t.reason(), "; waits: ", t.wait_reason());
}

std::vector<std::string> RenderStatus(const v1::Job& job, absl::string_view only_task,
                                      absl::Time now) {
  std::vector<Row> rows;
  for (const v1::Task& t : job.tasks()) {
    if (!only_task.empty() && t.id() != only_task) continue;
    rows.push_back({ShortTaskId(t.id()), TaskStateName(t.state()), AgentCell(t),
                    t.attempts() > 0 ? absl::StrCat(t.attempts()) : "", ExitCell(t),
                    ElapsedCell(t, now), TestsCell(t), TaskReason(t)});
  }
  std::vector<std::string> lines = {JobSummaryLine(job, now, /*with_name=*/true), ""};
  if (!job.submitter().empty()) lines[0] += absl::StrCat(", submitted by ", job.submitter());
  if (!job.rerun_of().empty()) lines[0] += absl::StrCat(", rerun of job ", job.rerun_of());
  for (std::string& l : RenderTable(
           {"TASK", "STATE", "AGENT", "ATTEMPT", "EXIT", "DURATION", "TESTS", "REASON"}, rows)) {
    lines.push_back(std::move(l));
  }
  // Issue 17: what the job was built from, one line per input.
  if (only_task.empty()) {
    std::vector<std::string> inputs;
    for (const v1::JobInput& in : job.inputs()) {
      std::string line = absl::StrCat("input ", in.name(), ": ", in.source());
      if (!in.commit().empty()) absl::StrAppend(&line, " at ", in.commit().substr(0, 12));
      absl::StrAppend(&line, ", tree ", in.tree().sha256().substr(0, 12), ", ", in.files(),
                      " files, ", FormatBytes(static_cast<uint64_t>(in.bytes())));
      inputs.push_back(Shown(line));
    }
    lines.insert(lines.begin() + 1, inputs.begin(), inputs.end());  // under the summary
  }
  std::vector<std::string> artifacts = RenderArtifactLines(job, only_task);
  if (!artifacts.empty()) {
    lines.emplace_back();
    for (std::string& l : artifacts) lines.push_back(std::move(l));
  }
  return lines;
}

std::vector<std::string> RenderArtifactLines(const v1::Job& job, absl::string_view only_task) {
  std::vector<std::string> lines;
  for (const v1::Task& t : job.tasks()) {
    if (!only_task.empty() && t.id() != only_task) continue;
    if (t.artifacts_size() == 0) continue;
    lines.push_back(Shown(absl::StrCat("artifacts: ", t.id(), ": ", ArtifactList(t))));
  }
  return lines;
}

std::vector<std::string> RenderArtifacts(const v1::Task& task) {
  std::vector<Row> rows;
  for (const v1::Artifact& a : task.artifacts()) {
    rows.push_back({a.name(), FormatBytes(a.size()), a.source()});
  }
  return RenderTable({"NAME", "SIZE", "SOURCE"}, rows);
}

// What the coordinator's agent policy grants `a`, and which of its declared
// labels it does not trust: "" when it grants everything and trusts every
// label (--insecure with no policy, or a coordinator from before issue 10).
std::string PolicyLine(const v1::Agent& a) {
  if (!a.has_grants()) return "";
  const v1::AgentGrants& g = a.grants();
  std::vector<std::string> kinds;
  for (int k : g.kinds()) kinds.push_back(StageKindName(static_cast<v1::StageKind>(k)));
  if (g.shell()) kinds.push_back("shell");
  std::vector<std::string> untrusted;
  for (const std::string& l : a.labels()) {
    if (std::find(a.trusted_labels().begin(), a.trusted_labels().end(), l) ==
        a.trusted_labels().end()) {
      untrusted.push_back(l);
    }
  }
  const bool everything = g.kinds_size() == 4 && g.shell() && g.privileged() && g.host_mounts() &&
                          g.secrets();
  if (everything && untrusted.empty()) return "";
  std::string line = absl::StrCat(a.name(), " may run ", absl::StrJoin(kinds, ","));
  std::vector<std::string> extras;
  if (g.privileged()) extras.push_back("privileged");
  if (g.host_mounts()) extras.push_back("host mounts");
  if (g.secrets()) extras.push_back("secrets");
  if (!extras.empty()) absl::StrAppend(&line, " with ", absl::StrJoin(extras, ", "));
  absl::StrAppend(&line, g.rule().empty() ? " (no policy rule)"
                                          : absl::StrCat(" (policy rule '", g.rule(), "')"));
  if (!untrusted.empty()) {
    absl::StrAppend(&line, "; untrusted labels: ", absl::StrJoin(untrusted, ","),
                    " (not used for stages that need trust)");
  }
  return Shown(line);
}

std::vector<std::string> RenderAgents(const std::vector<v1::Agent>& agents, absl::Time now) {
  std::vector<Row> rows;
  for (const v1::Agent& a : agents) {
    rows.push_back({a.name(), AgentStatus(a), absl::StrCat(a.used_slots(), "/", a.slots()),
                    absl::StrJoin(a.labels(), ","), absl::StrJoin(a.running_tasks(), ","),
                    FormatAgo(FromMicros(a.last_seen_us()), now)});
  }
  std::vector<std::string> lines =
      RenderTable({"NAME", "STATE", "SLOTS", "LABELS", "RUNNING", "LAST SEEN"}, rows);
  // Why an agent takes no work does not fit a column: one line each, below.
  for (const v1::Agent& a : agents) {
    if (!a.unavailable_reason().empty()) {
      lines.push_back(absl::StrCat(a.name(), " takes no new work: ", a.unavailable_reason()));
    }
    // Host health (issue 16, item 3): some kinds or GPUs out of use for now.
    if (a.unavailable_kinds_size() > 0) {
      std::vector<std::string> kinds;
      for (int k : a.unavailable_kinds()) kinds.push_back(StageKindName(static_cast<v1::StageKind>(k)));
      lines.push_back(Shown(absl::StrCat(a.name(), " takes no ", absl::StrJoin(kinds, ","),
                                         " work: ", a.kinds_unavailable_reason())));
    }
    if (a.fenced_gpus_size() > 0) {
      lines.push_back(Shown(absl::StrCat(a.name(), " fenced GPU ", absl::StrJoin(a.fenced_gpus(), ","),
                                         " (never handed out): ", a.gpu_fence_reason())));
    }
  }
  for (const v1::Agent& a : agents) {
    if (std::string policy = PolicyLine(a); !policy.empty()) lines.push_back(std::move(policy));
  }
  return lines;
}

namespace {

absl::Time FromTimestamp(const google::protobuf::Timestamp& ts) {
  return FromMicros(google::protobuf::util::TimeUtil::TimestampToMicroseconds(ts));
}

std::string CoordinatorRoleName(v1::CoordinatorRole r) {
  switch (r) {
    case v1::COORDINATOR_ROLE_ACTIVE:
      return "active";
    case v1::COORDINATOR_ROLE_STANDBY:
      return "standby";
    case v1::COORDINATOR_ROLE_GONE:
      return "gone";
    default:
      return "unknown";
  }
}

}  // namespace

std::vector<std::string> RenderCoordinators(const v1::ListCoordinatorsResponse& resp,
                                            absl::Time now, absl::TimeZone tz) {
  std::vector<Row> rows;
  bool any_active = false;
  for (const v1::CoordinatorInfo& c : resp.coordinators()) {
    const bool active = c.role() == v1::COORDINATOR_ROLE_ACTIVE;
    any_active = any_active || active;
    std::string since = "-";
    if (active && c.has_active_since()) {
      const absl::Time t = FromTimestamp(c.active_since());
      since = absl::StrCat(FormatDateTime(t, tz), " (", FormatAgo(t, now), ")");
    }
    rows.push_back({Shown(c.address()), CoordinatorRoleName(c.role()),
                    active ? absl::StrCat(c.epoch()) : "-", since,
                    c.has_last_seen() ? FormatAgo(FromTimestamp(c.last_seen()), now) : "never",
                    Shown(c.id())});
  }
  std::vector<std::string> lines =
      RenderTable({"ADDRESS", "ROLE", "EPOCH", "ACTIVE SINCE", "LAST SEEN", "ID"}, rows);
  if (!any_active) {
    lines.push_back(
        "no coordinator is active at the moment (a takeover is under way, or none runs)");
  }
  return lines;
}

std::vector<std::string> RenderResult(const v1::Job& job, absl::Time now) {
  std::vector<Row> rows;
  for (const v1::Task& t : job.tasks()) {
    rows.push_back({ShortTaskId(t.id()), TaskStateName(t.state()), AgentCell(t),
                    ElapsedCell(t, now), ExitCell(t), TestsCell(t)});
  }
  std::vector<std::string> lines =
      RenderTable({"TASK", "STATE", "AGENT", "DURATION", "EXIT", "TESTS"}, rows);
  lines.push_back(JobSummaryLine(job, now));
  return lines;
}

std::string RenderTaskChange(const v1::Task& task, absl::Time at, absl::TimeZone tz,
                             bool color) {
  const std::string state = TaskStateName(task.state());
  std::string s = absl::StrCat(FormatClock(at, tz), " ", ShortTaskId(task.id()), " ",
                               color ? ColorState(state) : state);
  if (std::string agent = AgentCell(task); !agent.empty()) absl::StrAppend(&s, " on ", agent);
  if (const std::string reason = TaskReason(task); !reason.empty()) {
    absl::StrAppend(&s, " (", Shown(reason), ")");
  }
  return s;
}

std::string PrefixLogLine(absl::string_view short_task, absl::string_view line) {
  return absl::StrCat("[", short_task, "] ", line);
}

std::vector<std::string> RenderLiveTable(const v1::Job& job, absl::Time now, int width,
                                         int max_lines) {
  int done = 0, running = 0, failed = 0;
  for (const v1::Task& t : job.tasks()) {
    if (IsTerminal(t.state())) ++done;
    if (t.state() == v1::TASK_STATE_RUNNING || t.state() == v1::TASK_STATE_ASSIGNED) ++running;
    if (t.state() == v1::TASK_STATE_FAILED || t.state() == v1::TASK_STATE_TIMED_OUT) ++failed;
  }
  std::string summary = absl::StrCat(JobSummaryLine(job, now, /*with_name=*/true), ": ", done, "/",
                                     job.tasks_size(), " done, ", running, " running");
  if (failed > 0) absl::StrAppend(&summary, ", ", failed, " failed");

  // Which tasks fit: active ones first, then failures, queued, the rest; shown
  // in job order so rows do not jump around.
  const int n = job.tasks_size();
  max_lines = std::max(max_lines, 4);
  std::vector<int> shown;
  int hidden = 0;
  if (n + 2 <= max_lines) {
    for (int i = 0; i < n; ++i) shown.push_back(i);
  } else {
    auto rank = [&](int i) {
      switch (job.tasks(i).state()) {
        case v1::TASK_STATE_RUNNING:
        case v1::TASK_STATE_ASSIGNED:
          return 0;
        case v1::TASK_STATE_FAILED:
        case v1::TASK_STATE_TIMED_OUT:
          return 1;
        case v1::TASK_STATE_QUEUED:
          return 2;
        default:
          return 3;
      }
    };
    std::vector<int> order(n);
    for (int i = 0; i < n; ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return rank(a) < rank(b); });
    const int room = max_lines - 3;  // summary, header, "N more"
    shown.assign(order.begin(), order.begin() + room);
    std::sort(shown.begin(), shown.end());
    hidden = n - room;
  }
  std::vector<Row> rows;
  bool any_tests = false;
  for (int i : shown) {
    const v1::Task& t = job.tasks(i);
    // A queued task has no agent: why it waits goes there.
    const bool waits = t.state() == v1::TASK_STATE_QUEUED && !t.wait_reason().empty();
    rows.push_back({ShortTaskId(t.id()), TaskStateName(t.state()),
                    waits ? absl::StrCat("(", t.wait_reason(), ")") : AgentCell(t),
                    ElapsedCell(t, now)});
    any_tests = any_tests || t.has_tests();
  }
  std::vector<std::string> table = RenderTable({"TASK", "STATE", "AGENT", "ELAPSED"}, rows);
  // Test counts arrive as tasks end; the column shows up then, if it fits
  // whole: a cut-off count would mislead.
  if (any_tests) {
    for (size_t r = 0; r < rows.size(); ++r) rows[r].push_back(TestsCell(job.tasks(shown[r])));
    std::vector<std::string> wide =
        RenderTable({"TASK", "STATE", "AGENT", "ELAPSED", "TESTS"}, rows);
    const bool fits =
        width <= 1 || std::all_of(wide.begin(), wide.end(), [&](const std::string& l) {
          return DisplayWidth(l) <= static_cast<size_t>(width - 1);
        });
    if (fits) table = std::move(wide);
  }
  std::vector<std::string> lines = {std::move(summary)};
  for (std::string& l : table) lines.push_back(std::move(l));
  if (hidden > 0) lines.push_back(absl::StrCat("... ", hidden, " more tasks"));
  if (width > 1) {
    for (std::string& l : lines) {
      l = Truncate(l, static_cast<size_t>(width - 1));
      while (!l.empty() && l.back() == ' ') l.pop_back();
    }
  }
  return lines;
}

std::string LiveFrame(int prev_lines, const std::vector<std::string>& above,
                      const std::vector<std::string>& table) {
  std::string s;
  // Cursor up over the old table, to column 0, clear to the end of the screen.
  if (prev_lines > 0) absl::StrAppend(&s, "\x1b[", prev_lines, "A");
  absl::StrAppend(&s, "\r\x1b[J");
  for (const std::string& l : above) absl::StrAppend(&s, l, "\n");
  for (const std::string& l : table) absl::StrAppend(&s, l, "\n");
  return s;
}

void LogLineSplitter::AppendLines(const std::string& task, absl::string_view data,
                                  absl::string_view prefix, std::string* out) {
  auto partial = partial_.find(task);
  const char* const begin = data.data();
  size_t start = 0;
  while (start < data.size()) {
    const void* nl = std::memchr(begin + start, '\n', data.size() - start);
    if (nl == nullptr) break;
    const size_t end = static_cast<size_t>(static_cast<const char*>(nl) - begin);
    out->append(prefix.data(), prefix.size());
    const size_t line_start = out->size();
    if (partial != partial_.end()) {
      out->append(partial->second);
      partial_.erase(partial);
      partial = partial_.end();
    }
    out->append(begin + start, end - start);
    if (out->size() > line_start && out->back() == '\r') out->pop_back();
    out->push_back('\n');
    start = end + 1;
  }
  if (start < data.size()) partial_[task].append(begin + start, data.size() - start);
}

std::vector<std::string> LogLineSplitter::Append(const std::string& task, absl::string_view data) {
  std::string text;
  AppendLines(task, data, "", &text);
  std::vector<std::string> lines;
  for (size_t start = 0, nl = text.find('\n'); nl != std::string::npos;
       start = nl + 1, nl = text.find('\n', start)) {
    lines.push_back(text.substr(start, nl - start));
  }
  return lines;
}

std::string LogLineSplitter::FlushTask(const std::string& task) {
  auto it = partial_.find(task);
  if (it == partial_.end()) return "";
  std::string rest = std::move(it->second);
  partial_.erase(it);
  if (!rest.empty() && rest.back() == '\r') rest.pop_back();
  return rest;
}

std::vector<std::pair<std::string, std::string>> LogLineSplitter::FlushAll() {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& [task, rest] : partial_) {
    if (!rest.empty() && rest.back() == '\r') rest.pop_back();
    out.emplace_back(task, std::move(rest));
  }
  partial_.clear();
  return out;
}

}  // namespace musafarm::cli
