#include "agent/agent_state.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/atomic_file.h"

namespace musafarm::agent {
namespace {

constexpr char kHeader[] = "musafarm-agent-state\t1";

std::string Line(std::initializer_list<absl::string_view> fields) {
  std::vector<std::string> escaped;
  for (absl::string_view f : fields) escaped.push_back(absl::CEscape(f));
  return absl::StrCat(absl::StrJoin(escaped, "\t"), "\n");
}

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

}  // namespace

std::string SerializeAgentState(const AgentState& state) {
  std::string out = absl::StrCat(kHeader, "\n");
  out += Line({"agent", state.agent});
  for (const RecordedAttempt& a : state.attempts) {
    out += Line({"attempt", a.task_id, absl::StrCat(a.attempt_id), a.kind});
    for (const RecordedProcess& p : a.processes) {
      out += Line({"process", absl::StrCat(p.pid), absl::StrCat(p.start_time)});
    }
    if (!a.container.empty()) out += Line({"container", a.container});
    for (const std::string& image : a.images) out += Line({"image", image});
    if (a.finished) {
      out += Line({"finished", a.spool_path, absl::StrCat(a.log_base), absl::StrCat(a.log_total),
                   a.result_path});
    }
    for (const RecordedFile& f : a.files) out += Line({"file", f.name, f.host_path, f.source});
  }
  return out;
}

absl::StatusOr<AgentState> ParseAgentState(absl::string_view text) {
  AgentState state;
  int line_no = 0;
  bool header = false;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    if (line.empty()) continue;
    auto bad = [&](absl::string_view why) {
      return absl::DataLossError(absl::StrCat("line ", line_no, ": ", why));
    };
    if (!header) {
      if (line != kHeader) return bad("not a musafarm agent state file (version 1)");
      header = true;
      continue;
    }
    std::vector<std::string> f;
    for (absl::string_view raw : absl::StrSplit(line, '\t')) {
      std::string unescaped;
      if (!absl::CUnescape(raw, &unescaped)) return bad("bad escape");
      f.push_back(std::move(unescaped));
    }
    const std::string& kind = f[0];
    if (kind == "agent" && f.size() == 2) {
      state.agent = f[1];
    } else if (kind == "attempt" && f.size() == 4) {
      RecordedAttempt a;
      a.task_id = f[1];
      if (!absl::SimpleAtoi(f[2], &a.attempt_id)) return bad("bad attempt id");
      a.kind = f[3];
      state.attempts.push_back(std::move(a));
    } else if ((kind == "process" && f.size() == 3) || (kind == "container" && f.size() == 2) ||
               (kind == "image" && f.size() == 2) || (kind == "finished" && f.size() == 5) ||
               (kind == "file" && f.size() == 4)) {
      if (state.attempts.empty()) return bad(absl::StrCat(kind, " before any attempt"));
      RecordedAttempt& a = state.attempts.back();
      if (kind == "process") {
        RecordedProcess p;
        if (!absl::SimpleAtoi(f[1], &p.pid) || !absl::SimpleAtoi(f[2], &p.start_time) ||
            p.pid <= 1) {
          return bad("bad process");
        }
        a.processes.push_back(p);
      } else if (kind == "container") {
        a.container = f[1];
      } else if (kind == "finished") {
        a.finished = true;
        a.spool_path = f[1];
        a.result_path = f[4];
        if (!absl::SimpleAtoi(f[2], &a.log_base) || !absl::SimpleAtoi(f[3], &a.log_total) ||
            a.log_base > a.log_total) {
          return bad("bad finished record");
        }
      } else if (kind == "file") {
        a.files.push_back(RecordedFile{f[1], f[2], f[3]});
      } else {
        a.images.push_back(f[1]);
      }
    } else {
      return bad(absl::StrCat("unknown record '", kind, "' with ", f.size(), " fields"));
    }
  }
  if (!header) return absl::DataLossError("empty agent state file");
  return state;
}

absl::Status WriteAgentStateFile(const std::string& path, const AgentState& state) {
  return WriteFileAtomically(path, SerializeAgentState(state), 0600);
}

absl::StatusOr<AgentState> ReadAgentStateFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return absl::NotFoundError(absl::StrCat("no ", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) return Errno("cannot read", path);
  std::stringstream ss;
  ss << in.rdbuf();
  absl::StatusOr<AgentState> state = ParseAgentState(ss.str());
  if (!state.ok()) {
    return absl::DataLossError(absl::StrCat(path, ": ", state.status().message()));
  }
  return state;
}

std::optional<ProcStat> ParseProcStat(absl::string_view text) {
  // "PID (COMM) STATE PPID PGRP SESSION ... STARTTIME(22) ...": COMM may hold
  // spaces and parentheses, so fields are counted after the last ')'.
  const size_t close = text.rfind(')');
  if (close == absl::string_view::npos) return std::nullopt;
  std::vector<absl::string_view> f =
      absl::StrSplit(text.substr(close + 1), ' ', absl::SkipWhitespace());
  // f[0] is field 3 (state), so field N is f[N - 3].
  if (f.size() < 20 || f[0].size() != 1) return std::nullopt;
  ProcStat st;
  st.state = f[0][0];
  if (!absl::SimpleAtoi(f[2], &st.pgrp) || !absl::SimpleAtoi(f[19], &st.start_time)) {
    return std::nullopt;
  }
  return st;
}

std::optional<ProcStat> ReadProcStat(int64_t pid, const std::string& proc_root) {
  std::ifstream in(absl::StrCat(proc_root, "/", pid, "/stat"), std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseProcStat(ss.str());
}

std::vector<int64_t> LeftoverProcesses(const RecordedProcess& recorded,
                                       const std::string& proc_root) {
  std::vector<int64_t> pids;
  if (recorded.pid <= 1) return pids;
  const std::optional<ProcStat> leader = ReadProcStat(recorded.pid, proc_root);
  if (leader && leader->start_time != recorded.start_time) return pids;  // pid reused
  DIR* dir = ::opendir(proc_root.c_str());
  if (dir == nullptr) return pids;
  while (const dirent* e = ::readdir(dir)) {
    int64_t pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid) || pid <= 1) continue;
    const std::optional<ProcStat> st = ReadProcStat(pid, proc_root);
    if (st && st->pgrp == recorded.pid && st->start_time >= recorded.start_time &&
        st->state != 'Z' && st->state != 'X') {
      pids.push_back(pid);
    }
  }
  ::closedir(dir);
  std::sort(pids.begin(), pids.end());
  return pids;
}

std::vector<int64_t> KillLeftoverProcesses(const RecordedProcess& recorded, absl::Duration wait) {
  const std::vector<int64_t> pids = LeftoverProcesses(recorded);
  for (int64_t pid : pids) ::kill(static_cast<pid_t>(pid), SIGKILL);
  // They are not our children (their parent was the earlier run), so they
  // cannot be reaped here; gone or a zombie is enough.
  const absl::Time deadline = absl::Now() + wait;
  for (int64_t pid : pids) {
    for (;;) {
      const std::optional<ProcStat> st = ReadProcStat(pid);
      if (!st || st->state == 'Z' || st->state == 'X' || absl::Now() >= deadline) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  return pids;
}

}  // namespace musafarm::agent
