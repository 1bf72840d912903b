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
#include "musafarm/agent/agent_state.pb.h"

namespace musafarm::agent {

// The agent's record of what it holds (AgentState, RecordedAttempt, ... in
// agent/proto/musafarm/agent/agent_state.proto), kept in
// <work-dir>/agent-state.pb so that an agent restarted after a crash or SIGKILL
// can find and remove what its earlier run left running, and report what had
// finished. Read once at start (Agent::Start), before the agent registers.
//
// Written twice (issue 19: no fsync between an assignment and its spawn, one
// for all the attempts that finished in a loop turn; StateWriter):
// the visible state (kVisibleAgentState's two slots, a DurableRecord written
// without fdatasync) is overwritten at every change, once per loop turn: a
// restarted agent process reads exactly what its predecessor wrote,
// which is all that running exec attempts need, since a machine crash ends
// their processes too. The durable state is written with fdatasync when a
// change must survive a machine crash (a finished attempt, before its result
// is sent; a docker attempt, before it starts; the instance secret): in the
// two slots of a DurableRecord (common/durable_record.h), kDurableAgentState
// ".0" and ".1", overwritten in place with one fdatasync and no journal
// commit. Each state carries AgentState.sequence and LoadAgentState takes the
// newest that parses, so a visible state that a machine crash left old, empty
// or missing falls back to the durable one. Earlier agents replaced
// kAgentStateFile (same format) by a rename instead, which costs ext4 the
// start of a write-out each time (0.2 ms at p50, milliseconds at p90, on the
// path from an assignment to its spawn): read on an upgrade, removed at the
// first visible write. Agents before issue 19 read kAgentStateFile only;
// agents of issue 19 before the slots wrote the durable state to
// kOldDurableAgentStateFile (read on an upgrade, then removed).
inline constexpr char kVisibleAgentState[] = "agent-state.visible";
inline constexpr char kAgentStateFile[] = "agent-state.pb";
inline constexpr char kDurableAgentState[] = "agent-state.durable";
inline constexpr char kOldDurableAgentStateFile[] = "agent-state.durable.pb";
// What agents before the proto wrote instead: text, read once on an upgrade
// in place (LoadAgentState).
inline constexpr char kLegacyAgentStateFile[] = "agent-state";

inline constexpr uint32_t kAgentStateVersion = 1;

// The state's bytes, its version set.
absl::StatusOr<std::string> SerializeAgentState(const AgentState& state);
// The serialized state (its version set), through WriteFileAtomically
// (common/atomic_file.h).
absl::Status WriteAgentStateFile(const std::string& path, const AgentState& state);
// NotFound when there is no file; DataLoss when it cannot be parsed, is of
// another version or holds a record no agent writes.
absl::StatusOr<AgentState> ReadAgentStateFile(const std::string& path);

// The durable state in `work_dir` (kDurableAgentState's slots). NotFound
// when none was ever written whole; DataLoss as ReadAgentStateFile.
absl::StatusOr<AgentState> ReadDurableAgentState(const std::string& work_dir);
// The visible state in `work_dir` (kVisibleAgentState's slots), as above.
absl::StatusOr<AgentState> ReadVisibleAgentState(const std::string& work_dir);

// The state in `work_dir`: the newest (AgentState.sequence) that parses of its
// kAgentStateFile, its durable state and a kOldDurableAgentStateFile, or when
// there is none of them, the kLegacyAgentStateFile an older agent left
// (`*legacy` says which). Once the caller has written the new files, it
// removes the old ones, so that they are read only once. NotFound when there
// is none; DataLoss when none of those there parses.
absl::StatusOr<AgentState> LoadAgentState(const std::string& work_dir, bool* legacy);

// The legacy text format, one record per line, fields tab-separated and
// C-escaped:
//   musafarm-agent-state 1
//   agent     NAME
//   attempt   TASK_ID  ATTEMPT_ID  KIND
//   process   PID  START_TIME        (belongs to the attempt above)
//   container NAME
//   image     TAG
//   finished  SPOOL_PATH  LOG_BASE  LOG_TOTAL  RESULT_PATH
//   file      NAME  HOST_PATH  SOURCE
absl::StatusOr<AgentState> ParseLegacyAgentState(absl::string_view text);

// Bytes in an agent's instance secret (AgentState.instance_secret): 256 bits.
inline constexpr size_t kInstanceSecretBytes = 32;
// A new instance secret from the kernel's CSPRNG (getrandom(2)).
absl::StatusOr<std::string> NewInstanceSecret();

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
// CLOCK_BOOTTIME now, in the unit of ProcStat::start_time (clock ticks since
// boot): the kernel stamps a process's start from that clock when it forks and
// /proc shows it rounded down to a tick. So a process forked between two reads
// that return the same tick started in that tick, and its start time is known
// without reading /proc (issue 19: a read per spawn, and the /proc entries it
// makes the kernel keep, were 7% of the agent's CPU per no-op task). 0 if the
// clock cannot be read.
uint64_t BootTicksNow();

// The live (non-zombie) processes of a recorded group that are still ours:
// none if the pid now belongs to a process with another start time (the pid
// was reused); otherwise every process whose group is the recorded pid and
// that started no earlier than the recorded leader (members outlive a leader
// that exited; a later group with the same id would need a new leader with
// that pid, which the first rule catches while it lives).
std::vector<int64_t> LeftoverProcesses(const RecordedProcess& recorded,
                                       const std::string& proc_root = "/proc");

// The live processes an earlier run started for one attempt, found by the
// MUSAFARM_TASK_ID, MUSAFARM_ATTEMPT_ID and MUSAFARM_WORKDIR (the attempt's
// directory under this agent's work dir) that every exec stage's environment
// carries (read from /proc/PID/environ, as Jenkins finds a build's processes by
// its cookie), plus the other live members of their process groups. The work
// dir tells this agent's attempts from those of another agent or farm on the
// same host, whose task and attempt ids may well be the same. Needed because a
// process is recorded in the state file only after it started: an agent killed
// in that window knows the attempt but not its processes, which would otherwise
// run on, orphaned, while the coordinator re-queues the work.
std::vector<int64_t> AttemptProcesses(absl::string_view task_id, uint64_t attempt_id,
                                      absl::string_view workdir,
                                      const std::string& proc_root = "/proc");

// SIGKILLs `pids` and waits up to `wait` for them to be gone (or zombies).
void KillProcesses(const std::vector<int64_t>& pids, absl::Duration wait = absl::Seconds(5));

// SIGKILLs LeftoverProcesses(recorded) and waits up to `wait` for them to be
// gone (or zombies). Returns the pids it killed.
std::vector<int64_t> KillLeftoverProcesses(const RecordedProcess& recorded,
                                           absl::Duration wait = absl::Seconds(5));

}  // namespace musafarm::agent
