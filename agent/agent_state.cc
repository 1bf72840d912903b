#include "agent/agent_state.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/atomic_file.h"
#include "common/durable_record.h"

namespace musafarm::agent {
namespace {

constexpr char kHeader[] = "musafarm-agent-state\t1";

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

absl::StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return absl::NotFoundError(absl::StrCat("no ", path));
  std::ifstream in(path, std::ios::binary);
  if (!in) return Errno("cannot read", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

absl::StatusOr<AgentState> ParseLegacyAgentState(absl::string_view text) {
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
      state.set_agent(f[1]);
    } else if (kind == "attempt" && f.size() == 4) {
      RecordedAttempt* a = state.add_attempts();
      a->set_task_id(f[1]);
      uint64_t id = 0;
      if (!absl::SimpleAtoi(f[2], &id)) return bad("bad attempt id");
      a->set_attempt_id(id);
      a->set_kind(f[3]);
    } else if ((kind == "process" && f.size() == 3) || (kind == "container" && f.size() == 2) ||
               (kind == "image" && f.size() == 2) || (kind == "finished" && f.size() == 5) ||
               (kind == "file" && f.size() == 4)) {
      if (state.attempts().empty()) return bad(absl::StrCat(kind, " before any attempt"));
      RecordedAttempt& a = *state.mutable_attempts(state.attempts_size() - 1);
      if (kind == "process") {
        int64_t pid = 0;
        uint64_t start_time = 0;
        if (!absl::SimpleAtoi(f[1], &pid) || !absl::SimpleAtoi(f[2], &start_time) || pid <= 1) {
          return bad("bad process");
        }
        RecordedProcess* p = a.add_processes();
        p->set_pid(pid);
        p->set_start_time(start_time);
      } else if (kind == "container") {
        a.set_container(f[1]);
      } else if (kind == "finished") {
        uint64_t base = 0, total = 0;
        if (!absl::SimpleAtoi(f[2], &base) || !absl::SimpleAtoi(f[3], &total) || base > total) {
          return bad("bad finished record");
        }
        a.set_finished(true);
        a.set_spool_path(f[1]);
        a.set_log_base(base);
        a.set_log_total(total);
        a.set_result_path(f[4]);
      } else if (kind == "file") {
        RecordedFile* file = a.add_files();
        file->set_name(f[1]);
        file->set_host_path(f[2]);
        file->set_source(f[3]);
      } else {
        a.add_images(f[1]);
      }
    } else {
      return bad(absl::StrCat("unknown record '", kind, "' with ", f.size(), " fields"));
    }
  }
  if (!header) return absl::DataLossError("empty agent state file");
  state.set_version(kAgentStateVersion);
  return state;
}

absl::StatusOr<std::string> NewInstanceSecret() {
  std::string secret(kInstanceSecretBytes, '\0');
  size_t got = 0;
  while (got < secret.size()) {
    const ssize_t n = ::getrandom(secret.data() + got, secret.size() - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::InternalError(absl::StrCat("getrandom: ", std::strerror(errno)));
    got += static_cast<size_t>(n);
  }
  return secret;
}

absl::StatusOr<std::string> SerializeAgentState(const AgentState& state) {
  AgentState versioned = state;
  versioned.set_version(kAgentStateVersion);
  std::string bytes;
  if (!versioned.SerializeToString(&bytes)) {
    return absl::InternalError("cannot serialize the state");
  }
  return bytes;
}

absl::Status WriteAgentStateFile(const std::string& path, const AgentState& state) {
  absl::StatusOr<std::string> bytes = SerializeAgentState(state);
  if (!bytes.ok()) return bytes.status();
  return WriteFileAtomically(path, *bytes, 0600);
}

namespace {

// `bytes` as a state, `path` naming where they came from in errors.
absl::StatusOr<AgentState> ParseAgentState(const std::string& bytes, const std::string& path) {
  AgentState state;
  if (!state.ParseFromString(bytes) || state.version() == 0) {
    return absl::DataLossError(absl::StrCat(path, ": not a musafarm agent state"));
  }
  if (state.version() != kAgentStateVersion) {
    return absl::DataLossError(absl::StrCat(path, ": agent state version ", state.version(),
                                            " (this agent reads ", kAgentStateVersion, ")"));
  }
  // A record that could not have been written (the legacy reader's checks).
  for (const RecordedAttempt& a : state.attempts()) {
    for (const RecordedProcess& p : a.processes()) {
      if (p.pid() <= 1) return absl::DataLossError(absl::StrCat(path, ": bad process"));
    }
    if (a.log_base() > a.log_total()) {
      return absl::DataLossError(absl::StrCat(path, ": bad finished record"));
    }
  }
  return state;
}

}  // namespace

absl::StatusOr<AgentState> ReadAgentStateFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadWholeFile(path);
  if (!bytes.ok()) return bytes.status();
  return ParseAgentState(*bytes, path);
}

namespace {
absl::StatusOr<AgentState> ReadRecordedAgentState(const std::string& base) {
  absl::StatusOr<std::string> bytes = DurableRecord::Read(base);
  if (!bytes.ok()) return bytes.status();
  return ParseAgentState(*bytes, base);
}
}  // namespace

absl::StatusOr<AgentState> ReadDurableAgentState(const std::string& work_dir) {
  return ReadRecordedAgentState(absl::StrCat(work_dir, "/", kDurableAgentState));
}

absl::StatusOr<AgentState> ReadVisibleAgentState(const std::string& work_dir) {
  return ReadRecordedAgentState(absl::StrCat(work_dir, "/", kVisibleAgentState));
}

absl::StatusOr<AgentState> LoadAgentState(const std::string& work_dir, bool* legacy) {
  *legacy = false;
  // In order of preference at equal sequence: the same snapshot, and the
  // visible file is then at least as new.
  const absl::StatusOr<AgentState> found[] = {
      ReadVisibleAgentState(work_dir),
      ReadAgentStateFile(absl::StrCat(work_dir, "/", kAgentStateFile)),
      ReadDurableAgentState(work_dir),
      ReadAgentStateFile(absl::StrCat(work_dir, "/", kOldDurableAgentStateFile)),
  };
  const absl::StatusOr<AgentState>* newest = nullptr;
  for (const absl::StatusOr<AgentState>& f : found) {
    if (f.ok() && (newest == nullptr || f->sequence() > (*newest)->sequence())) newest = &f;
  }
  // e.g. a visible file a machine crash left empty: the durable state.
  if (newest != nullptr) return *newest;
  for (const absl::StatusOr<AgentState>& f : found) {
    if (!absl::IsNotFound(f.status())) return f;
  }
  const std::string old = absl::StrCat(work_dir, "/", kLegacyAgentStateFile);
  absl::StatusOr<std::string> text = ReadWholeFile(old);
  if (!text.ok()) return text.status();
  *legacy = true;
  absl::StatusOr<AgentState> state = ParseLegacyAgentState(*text);
  if (!state.ok()) return absl::DataLossError(absl::StrCat(old, ": ", state.status().message()));
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

uint64_t BootTicksNow() {
  static const long ticks_per_second = ::sysconf(_SC_CLK_TCK);
  struct timespec ts;
  if (ticks_per_second <= 0 || ::clock_gettime(CLOCK_BOOTTIME, &ts) != 0) return 0;
  // As the kernel's nsec_to_clock_t: nanoseconds divided by the tick's, rounded down.
  const uint64_t ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
  return ns / (1000000000ull / static_cast<uint64_t>(ticks_per_second));
}

std::optional<ProcStat> ReadProcStat(int64_t pid, const std::string& proc_root) {
  // Read on every spawn (the recorded start time): one open, read and close
  // into the stack, not an ifstream and a stringstream (their locale and
  // buffers were a tenth of the agent's CPU per no-op task; issue 19). The
  // line is a few hundred bytes; the fields parsed are near its start.
  const std::string path = absl::StrCat(proc_root, "/", pid, "/stat");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[4096];
  size_t len = 0;
  while (len < sizeof buf) {
    const ssize_t n = ::read(fd, buf + len, sizeof buf - len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    len += static_cast<size_t>(n);
  }
  ::close(fd);
  return ParseProcStat(absl::string_view(buf, len));
}

std::vector<int64_t> LeftoverProcesses(const RecordedProcess& recorded,
                                       const std::string& proc_root) {
  std::vector<int64_t> pids;
  if (recorded.pid() <= 1) return pids;
  const std::optional<ProcStat> leader = ReadProcStat(recorded.pid(), proc_root);
  if (leader && leader->start_time != recorded.start_time()) return pids;  // pid reused
  DIR* dir = ::opendir(proc_root.c_str());
  if (dir == nullptr) return pids;
  while (const dirent* e = ::readdir(dir)) {
    int64_t pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid) || pid <= 1) continue;
    const std::optional<ProcStat> st = ReadProcStat(pid, proc_root);
    if (st && st->pgrp == recorded.pid() && st->start_time >= recorded.start_time() &&
        st->state != 'Z' && st->state != 'X') {
      pids.push_back(pid);
    }
  }
  ::closedir(dir);
  std::sort(pids.begin(), pids.end());
  return pids;
}

std::vector<int64_t> AttemptProcesses(absl::string_view task_id, uint64_t attempt_id,
                                      absl::string_view workdir, const std::string& proc_root) {
  const std::string want_task = absl::StrCat("MUSAFARM_TASK_ID=", task_id);
  const std::string want_attempt = absl::StrCat("MUSAFARM_ATTEMPT_ID=", attempt_id);
  const std::string want_dir = absl::StrCat("MUSAFARM_WORKDIR=", workdir);
  std::vector<std::pair<int64_t, ProcStat>> live;
  std::set<int64_t> pids, groups;
  DIR* dir = ::opendir(proc_root.c_str());
  if (dir == nullptr) return {};
  while (const dirent* e = ::readdir(dir)) {
    int64_t pid = 0;
    if (!absl::SimpleAtoi(e->d_name, &pid) || pid <= 1) continue;
    const std::optional<ProcStat> st = ReadProcStat(pid, proc_root);
    if (!st || st->state == 'Z' || st->state == 'X') continue;
    live.emplace_back(pid, *st);
    std::ifstream in(absl::StrCat(proc_root, "/", pid, "/environ"), std::ios::binary);
    if (!in) continue;
    bool task = false, attempt = false, in_dir = false;
    for (std::string var; std::getline(in, var, '\0');) {
      task = task || var == want_task;
      attempt = attempt || var == want_attempt;
      in_dir = in_dir || var == want_dir;
    }
    if (task && attempt && in_dir) {
      pids.insert(pid);
      if (st->pgrp > 1) groups.insert(st->pgrp);
    }
  }
  ::closedir(dir);
  // A descendant that cleared its environment still shares the group.
  for (const auto& [pid, st] : live) {
    if (groups.count(st.pgrp) != 0) pids.insert(pid);
  }
  return std::vector<int64_t>(pids.begin(), pids.end());
}

void KillProcesses(const std::vector<int64_t>& pids, absl::Duration wait) {
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
}

std::vector<int64_t> KillLeftoverProcesses(const RecordedProcess& recorded, absl::Duration wait) {
  const std::vector<int64_t> pids = LeftoverProcesses(recorded);
  KillProcesses(pids, wait);
  return pids;
}

}  // namespace musafarm::agent
