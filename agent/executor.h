#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/agent_state.h"
#include "musafarm/v1/agent_service.pb.h"

namespace musafarm::agent {

// A file or directory an execution brought back from where it ran (e.g. copied
// out of a container) into the attempt's work dir.
struct CollectedFile {
  std::string name;       // unique within the attempt, e.g. "ut_output.txt"
  std::string host_path;  // where it now is on the agent host
  std::string source;     // where it came from, e.g. the container path
};

struct ExitInfo {
  int exit_code = -1;  // -1 when the process did not exit by itself
  int signal = 0;      // terminating signal, 0 if none
  bool cancelled = false;
  bool timed_out = false;
  std::string error;  // could not run at all (e.g. no such program)
  std::vector<CollectedFile> files;
};

// Callbacks from an execution. Called from the executor's own thread, in
// order: any number of on_output, then on_exit exactly once. Must not block,
// except wait_for_room, which is meant to.
struct ExecCallbacks {
  absl::AnyInvocable<void(std::string data)> on_output;
  absl::AnyInvocable<void(ExitInfo info)> on_exit;
  // Optional (the agent's spool bound, SpoolBudget). Waits up to `timeout`
  // for room for more output; true when there is. Executors ask it after each
  // on_output of a task's output (AwaitOutputRoom) and read no more from the
  // pipe while it says no, so the process blocks on its full pipe.
  absl::AnyInvocable<bool(absl::Duration timeout)> wait_for_room;
  // Optional. A process group the execution started, named by its leader's
  // pid, that must not outlive the agent: the agent records it in its state
  // file, so that a restarted agent can kill what an earlier run left. Called
  // from Start() or the execution's thread, before the leader is reaped.
  absl::AnyInvocable<void(pid_t leader)> on_process;
};

// For executors, right after on_output of task output: while the agent has no
// room (wait_for_room says no), waits, calling `tick` about every 50 ms so that
// cancel and timeouts still work. Returns at once without wait_for_room, and
// as soon as `stop_waiting` holds (the process is being stopped or has been
// reaped: its remaining output is bounded and taken as it comes).
void AwaitOutputRoom(ExecCallbacks& cb, const std::function<void()>& tick,
                     const std::function<bool()>& stop_waiting);

// Whether `pid`, a child of this process, has been reaped (waited for)
// already. Only meaningful on the thread that reaps it.
bool ChildReaped(pid_t pid);

// A running attempt. Cancel() is thread-safe, returns at once, and may be
// called any number of times; the execution then ends with cancelled=true.
class Execution {
 public:
  virtual ~Execution() = default;  // waits for the execution's thread
  virtual void Cancel() = 0;
};

// Runs a stage of one kind. Implementations: ExecExecutor (host processes),
// DockerExecutor (docker_build / docker_run / docker_push through the engine's CLI).
class Executor {
 public:
  virtual ~Executor() = default;
  virtual absl::StatusOr<std::unique_ptr<Execution>> Start(const v1::Assignment& assignment,
                                                           const std::string& workdir,
                                                           ExecCallbacks callbacks) = 0;
  // Removes what an earlier run of this agent left behind beyond its process
  // groups (which the agent kills itself), e.g. containers; `recorded` is what
  // the earlier run's state file listed. Called once, from Agent::Start,
  // before any attempt runs. Returns one line per finding, for the log.
  virtual std::vector<std::string> RemoveLeftovers(const std::vector<RecordedAttempt>& recorded) {
    (void)recorded;
    return {};
  }
};

}  // namespace musafarm::agent
