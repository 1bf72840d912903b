#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "musafarm/v1/agent_service.pb.h"

namespace musafarm::agent {

// What an attempt may leave on the host beyond its process groups (which the
// agent kills itself), named before it runs. The agent keeps it in its state
// file without reading it, so that after a crash the executor of its next run
// can remove what is left (RemoveLeftovers).
struct AttemptTraces {
  std::string task_id;
  uint64_t attempt_id = 0;
  std::string kind;                 // "exec", "docker_build", "docker_run", "docker_push"
  std::string container;            // docker_run: its container's name
  std::vector<std::string> images;  // docker_build: the tags it builds
};

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
  // Non-empty: the attempt failed because its host could not run it (the
  // Docker daemon stopped answering), not because of the stage: the agent
  // hands it back instead of reporting a failure, so that it runs again
  // without using a retry (issue 16, item 3). Says why.
  std::string host_lost;
  bool daemon_lost = false;  // host_lost because the Docker daemon did not answer
  // The exec executor read the task's output to its end: no process it
  // started (nor one that left its process group) still holds the output.
  // The agent then reuses the emptied work dir (WorkDirPool).
  bool output_complete = false;
};

// Callbacks from an execution. Called from the executor's thread (one per
// attempt, or the exec executor's one reaper for all), in order: any number of
// on_output, then on_exit exactly once. Must not block, except wait_for_room,
// which is meant to (the reaper asks it with a zero timeout), and on_exit of an
// attempt with GPUs or files to collect (which ends on a thread of its own).
inline constexpr uint64_t kMinOutputRead = 64 << 10;

struct ExecCallbacks {
  absl::AnyInvocable<void(std::string data)> on_output;
  absl::AnyInvocable<void(ExitInfo info)> on_exit;
  // Optional (the agent's spool bound, SpoolBudget). Waits up to `timeout`
  // for room for more output; true when there is. Executors ask it after each
  // on_output of a task's output (AwaitOutputRoom) and read no more from the
  // pipe while it says no, so the process blocks on its full pipe.
  absl::AnyInvocable<bool(absl::Duration timeout)> wait_for_room;
  // Optional (the agent's send lead, SendLead::Room). How many bytes of output
  // the agent wants in the next read: an executor that can size its reads
  // (the exec executor's reaper) reads no more than that, with a floor of
  // kMinOutputRead, so that output waiting for a watcher waits in the pipe,
  // where the task blocks on it, rather than a whole read ahead of the bound.
  absl::AnyInvocable<uint64_t()> read_room;
  // Optional. A process group the execution started, named by its leader's
  // pid, that must not outlive the agent: the agent records it in its state
  // file, so that a restarted agent can kill what an earlier run left. Called
  // from Start() or the execution's thread, before the leader is reaped.
  absl::AnyInvocable<void(pid_t leader)> on_process;
  // Optional, for an executor whose ReportsRunning() is true: called once, on
  // the executor's thread, when the process is still running `running_after`
  // after it started; never when it ended sooner. The agent holds a silent
  // attempt's Started until then (AgentOptions::started_hold).
  absl::AnyInvocable<void()> on_running;
  absl::Duration running_after = absl::ZeroDuration();
};

// Image refs a stage builds, runs or pushes (docker_build tags, docker_run
// image, docker_push images): what an agent Touches when it runs the stage and
// what the keep set of Prune holds for a stage that is queued or running.
std::vector<std::string> StageImages(const v1::StageSpec& stage);

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
  // What an attempt of `assignment` may leave behind (AttemptTraces). Called
  // before Start(); the default names the attempt and its kind only.
  virtual AttemptTraces Traces(const v1::Assignment& assignment) const;
  // Removes what an earlier run of this agent left behind beyond its process
  // groups, e.g. containers; `recorded` is what the earlier run's state file
  // listed (Traces() of its attempts). Called once, from Agent::Start, before
  // any attempt runs. Returns one line per finding, for the log.
  virtual std::vector<std::string> RemoveLeftovers(const std::vector<AttemptTraces>& recorded) {
    (void)recorded;
    return {};
  }
  // Whether Start's executions call ExecCallbacks::on_running (when set).
  virtual bool ReportsRunning() const { return false; }
};

}  // namespace musafarm::agent
