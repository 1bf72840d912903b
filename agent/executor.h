#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
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
// order: any number of on_output, then on_exit exactly once. Must not block.
struct ExecCallbacks {
  absl::AnyInvocable<void(std::string data)> on_output;
  absl::AnyInvocable<void(ExitInfo info)> on_exit;
};

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
};

}  // namespace musafarm::agent
