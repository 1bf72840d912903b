#pragma once

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/time/time.h"

namespace musafarm {

using EnvMap = std::map<std::string, std::string>;

// This process's environment as a map.
EnvMap InheritedEnv();

// A started child: its pid (leader of a process group of its own) and the
// read end of the pipe that holds its stdout and stderr.
struct Child {
  pid_t pid = -1;
  int fd = -1;
  std::string error;    // set when it could not be started
  int spawn_errno = 0;  // e.g. ENOENT for a missing program
};

// Starts argv as an argv vector (argv[0] looked up in this process's PATH;
// never a shell) in `dir` ("" = ours) with exactly `env`, stdin on /dev/null,
// stdout and stderr on one pipe (so the output keeps the order it was written
// in), in a process group of its own, with an empty signal mask and default
// dispositions (the agent blocks SIGTERM and ignores SIGPIPE; its children
// must not), and the calling thread's CPU affinity (the spawn pins the caller
// to its CPU for the clone and gives the child the caller's mask back:
// clone_spawn.h, cpu_pin.h). Where argv[0] was found is remembered for a second (a program
// installed meanwhile into an earlier PATH directory is run from the next
// second on), so that a burst of spawns does not try every PATH entry with an
// execve each time. For an A/B on one build, MUSAFARM_SPAWN in the
// environment: "posix", glibc's posix_spawn instead of CloneSpawn (no pin);
// "clone-default-slice", CloneSpawn without SpawnSlice (which Spawn uses
// otherwise: at low load it shortens both the spawn and a short task's end;
// under heavy load the task may wait behind the spawner, BENCHMARKS.md).
Child Spawn(const std::vector<std::string>& argv, const EnvMap& env, const std::string& dir);

// The most one read of a child's output takes (Supervise, the agent's reaper).
inline constexpr size_t kChildReadChunk = 1 << 20;

// A pidfd for `pid` (Linux 5.3): readable once the process has exited, so that
// one poll() waits for output and the exit at once. -1 where the kernel has none.
int OpenPidFd(pid_t pid);

// If `pid`, a child leading its own process group, has exited: kills whatever
// it left in its group, reaps it into `*status` and returns true. The group id
// stays reserved until then (the exit is looked at without reaping), so the
// kill cannot reach anyone else's processes.
bool ReapIfExited(pid_t pid, int* status);

// Reads the child's output into `on_output` until it has exited, calling
// `tick` about every 50 ms while it runs (for cancel and deadlines; `tick` may
// signal the group -pid, which stays reserved until the exit is seen). When
// the main process exits, whatever it left in its group is killed and it is
// reaped; output still buffered is read until EOF, or for at most `drain` if a
// process that left the group (setsid) holds the pipe. Returns the wait
// status; `*complete` says whether the output reached EOF. Closes child.fd.
int Supervise(const Child& child, const std::function<void(std::string)>& on_output,
              const std::function<void()>& tick, absl::Duration drain, bool* complete);

}  // namespace musafarm
