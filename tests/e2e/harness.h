#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::e2e {

// A child process of the test, its stdout and stderr going to one file.
class Process {
 public:
  static absl::StatusOr<std::unique_ptr<Process>> Start(const std::vector<std::string>& argv,
                                                        const std::string& log_path);
  ~Process();  // SIGKILLs the process if it still runs
  void Signal(int sig);
  // Waits for exit; returns the exit code (128+signal if killed), or -1 on timeout.
  int Wait(absl::Duration timeout);
  bool Running();
  pid_t pid() const { return pid_; }
  std::string Output() const;  // what it wrote so far

 private:
  Process(pid_t pid, std::string log) : pid_(pid), log_(std::move(log)) {}
  pid_t pid_;
  std::string log_;
  int status_ = -1;
  bool reaped_ = false;
};

struct CliResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Polls `cond` until it holds or `timeout` passes. For conditions in other
// processes, which no notification reaches.
bool WaitFor(const std::function<bool()>& cond, absl::Duration timeout = absl::Seconds(30));

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content);

// A farm on loopback: one coordinator (port 0, read back from its port file),
// agents, and the real CLI, in a fresh directory under the test's temp dir.
class Farm {
 public:
  Farm();
  ~Farm();

  const std::string& dir() const { return dir_; }
  std::string address() const;
  int port() const { return port_; }  // the coordinator's (0 before it first started)

  // Starts the coordinator; on a restart it listens on the same port again.
  void StartCoordinator(const std::vector<std::string>& extra_flags = {});
  void StopCoordinator(int sig);  // and waits for it
  Process* coordinator() { return coordinator_.get(); }

  Process* StartAgent(const std::string& name, const std::vector<std::string>& labels, int slots,
                      const std::vector<std::string>& extra_flags = {});
  // The same, dialling `coordinator` (e.g. a proxy in front of it) instead of address().
  // Starting a name again (after its process died) replaces the old process, same work dir.
  Process* StartAgentVia(const std::string& coordinator, const std::string& name,
                         const std::vector<std::string>& labels, int slots,
                         const std::vector<std::string>& extra_flags = {});
  // Another process for agent `name`, on its own work dir agent-INSTANCE (as
  // when one name is started twice by mistake); kept under `instance`.
  Process* StartAgentInstance(const std::string& instance, const std::string& name,
                              const std::vector<std::string>& labels, int slots);
  // The coordinator's --data-dir (its database is musafarm.db in there).
  std::string data_dir() const { return dir_ + "/coordinator"; }

  // Runs `musafarm --coordinator ADDR args...` and waits for it.
  CliResult Cli(const std::vector<std::string>& args, absl::Duration timeout = absl::Seconds(120));
  // Starts `musafarm --coordinator ADDR args...` in the background.
  std::unique_ptr<Process> CliAsync(const std::vector<std::string>& args, const std::string& log);

  std::string WritePipeline(const std::string& name, const std::string& yaml);
  std::string Submit(const std::string& pipeline_file);  // returns the job id
  absl::StatusOr<v1::Job> Job(const std::string& id);
  std::vector<v1::Agent> Agents();
  bool WaitForJobEnd(const std::string& id, absl::Duration timeout = absl::Seconds(120));
  bool WaitForTaskState(const std::string& job, const std::string& task, v1::TaskState state,
                        absl::Duration timeout = absl::Seconds(60));

 private:
  Process* StartAgentProcess(const std::string& coordinator, const std::string& instance,
                             const std::string& name, const std::vector<std::string>& labels,
                             int slots, const std::vector<std::string>& extra_flags);

  std::string dir_;
  int port_ = 0;
  int coordinator_starts_ = 0;
  std::unique_ptr<Process> coordinator_;
  std::map<std::string, std::unique_ptr<Process>> agents_;
};

const v1::Task* FindTask(const v1::Job& job, const std::string& task_suffix);

}  // namespace musafarm::e2e
