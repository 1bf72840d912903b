#pragma once

#include "absl/time/time.h"
#include "agent/executor/executor.h"
#include "agent/executor/process_reaper.h"
#include "common/subprocess.h"

namespace musafarm::agent {

struct ExecOptions {
  // After SIGTERM to the process group, how long before SIGKILL.
  absl::Duration kill_grace = absl::Seconds(5);
  // Variables added to every task's environment (e.g. MUSAFARM_AGENT).
  std::vector<std::pair<std::string, std::string>> extra_env;
  // GPU vendor of this host (GpuInventory::vendor): picks the variable that
  // names an attempt's GPUs (agent/task_env.h).
  std::string gpu_vendor;
};

// Runs `exec` stages as host processes: argv straight to execve (a shell only
// when the stage says `shell`), in `workdir`, with the agent's environment
// plus the stage's, the secrets the stage names (NAME=value; never in argv) and
// the variables naming the attempt's GPUs (agent/task_env.h). The process gets its own process
// group; stdout and stderr share one pipe so the log keeps the order the process wrote in. On
// cancel or timeout the whole group gets SIGTERM, then SIGKILL after kill_grace; when the main
// process exits, whatever it left in its group is killed too. One thread supervises every
// running attempt (ProcessReaper).
class ExecExecutor final : public Executor {
 public:
  explicit ExecExecutor(ExecOptions options);
  absl::StatusOr<std::unique_ptr<Execution>> Start(const v1::Assignment& assignment,
                                                   const std::string& workdir,
                                                   ExecCallbacks callbacks) override;
  // Its reaper calls on_running (ProcessReaper).
  bool ReportsRunning() const override { return true; }

 private:
  ExecOptions options_;
  // The agent's own environment and options_.extra_env, read once: the
  // agent's environment does not change while it runs, and parsing it for
  // each spawn was 5% of the agent's CPU per no-op task (issue 19).
  EnvMap base_env_;
  // Declared last: destroyed first, it stops what still runs (Executions
  // outliving it stay valid).
  ProcessReaper reaper_;
};

}  // namespace musafarm::agent
