#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace musafarm::agent {

// The agent's record of what it holds, kept in <work-dir>/agent-state so that
// an agent restarted after a crash or SIGKILL can find and remove what its
// earlier run left running. Written atomically on every change; read once at
// start (Agent::Start), before the agent registers.

// A process group an attempt started: its leader's pid (= the group id) and
// the leader's start time, in clock ticks after boot (/proc/PID/stat field 22),
// which tells the leader apart from a later process that got the same pid.
struct RecordedProcess {
  int64_t pid = 0;
  uint64_t start_time = 0;
  bool operator==(const RecordedProcess& o) const {
    return pid == o.pid && start_time == o.start_time;
  }
};

// A file an attempt collected (an artifact), as it lies on the agent host.
struct RecordedFile {
  std::string name;
  std::string host_path;
  std::string source;
  bool operator==(const RecordedFile& o) const {
    return name == o.name && host_path == o.host_path && source == o.source;
  }
};

struct RecordedAttempt {
  std::string task_id;
  uint64_t attempt_id = 0;
  std::string kind;                        // "exec", "docker_build", "docker_run", "docker_push"
  std::vector<RecordedProcess> processes;  // in the order started
  std::string container;                   // docker_run: its container's name
  std::vector<std::string> images;         // docker_build: the tags it builds
  // Finished: its process has exited and its result is built but not yet
  // acknowledged. A restarted agent reports it instead of re-queueing it:
  // the result (a serialized v1::AttemptResult) is in `result_path`, the log
  // bytes [log_base, log_total) at least in the spool file `spool_path`
  // (which holds the log's last bytes, up to log_total), the artifacts in
  // `files`. Never any secret value: all of these are redacted.
  bool finished = false;
  std::string spool_path;
  uint64_t log_base = 0;  // acknowledged when recorded
  uint64_t log_total = 0;
  std::string result_path;
  std::vector<RecordedFile> files;
  bool operator==(const RecordedAttempt& o) const {
    return task_id == o.task_id && attempt_id == o.attempt_id && kind == o.kind &&
           processes == o.processes && container == o.container && images == o.images &&
           finished == o.finished && spool_path == o.spool_path && log_base == o.log_base &&
           log_total == o.log_total && result_path == o.result_path && files == o.files;
  }
};

struct AgentState {
  std::string agent;  // the agent's name, for the log
  std::vector<RecordedAttempt> attempts;
  bool operator==(const AgentState& o) const { return agent == o.agent && attempts == o.attempts; }
};

// Text, one record per line, fields tab-separated and C-escaped:
//   musafarm-agent-state 1
//   agent     NAME
//   attempt   TASK_ID  ATTEMPT_ID  KIND
//   process   PID  START_TIME        (belongs to the attempt above)
//   container NAME
//   image     TAG
//   finished  SPOOL_PATH  LOG_BASE  LOG_TOTAL  RESULT_PATH
//   file      NAME  HOST_PATH  SOURCE
std::string SerializeAgentState(const AgentState& state);
absl::StatusOr<AgentState> ParseAgentState(absl::string_view text);

// The serialized state, through WriteFileAtomically (common/atomic_file.h).
absl::Status WriteAgentStateFile(const std::string& path, const AgentState& state);
// NotFound when there is no file; DataLoss when it cannot be parsed.
absl::StatusOr<AgentState> ReadAgentStateFile(const std::string& path);

// What /proc/PID/stat says about a process.
struct ProcStat {
  char state = '?';  // R, S, D, Z, ...
  int64_t pgrp = 0;
  uint64_t start_time = 0;
};
// `proc_root` is "/proc" but for tests. nullopt when there is no such process.
std::optional<ProcStat> ReadProcStat(int64_t pid, const std::string& proc_root = "/proc");
// Parses the content of a /proc/PID/stat file.
std::optional<ProcStat> ParseProcStat(absl::string_view text);

// The live (non-zombie) processes of a recorded group that are still ours:
// none if the pid now belongs to a process with another start time (the pid
// was reused); otherwise every process whose group is the recorded pid and
// that started no earlier than the recorded leader (members outlive a leader
// that exited; a later group with the same id would need a new leader with
// that pid, which the first rule catches while it lives).
std::vector<int64_t> LeftoverProcesses(const RecordedProcess& recorded,
                                       const std::string& proc_root = "/proc");

// SIGKILLs LeftoverProcesses(recorded) and waits up to `wait` for them to be
// gone (or zombies). Returns the pids it killed.
std::vector<int64_t> KillLeftoverProcesses(const RecordedProcess& recorded,
                                           absl::Duration wait = absl::Seconds(5));

}  // namespace musafarm::agent
