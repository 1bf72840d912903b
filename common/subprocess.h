#pragma once

#include <sys/types.h>

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

// Starts argv as an argv vector (argv[0] looked up in PATH; never a shell) in
// `dir` ("" = ours) with exactly `env`, stdin on /dev/null, stdout and stderr
// on one pipe (so the output keeps the order it was written in), in a process
// group of its own, with an empty signal mask and default dispositions (the
// agent blocks SIGTERM and ignores SIGPIPE; its children must not).
Child Spawn(const std::vector<std::string>& argv, const EnvMap& env, const std::string& dir);

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
