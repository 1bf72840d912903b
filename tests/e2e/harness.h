#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/pki.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::e2e {

// A child process of the test, its stdout and stderr going to one file.
class Process {
 public:
  // `env`: the child's environment ("NAME=value" each); empty: the test's.
  static absl::StatusOr<std::unique_ptr<Process>> Start(const std::vector<std::string>& argv,
                                                        const std::string& log_path,
                                                        std::vector<std::string> env = {});
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

// Runs `argv` (no shell) to its exit; returns the exit code (-1 if it could not
// start or outlived `timeout`), its stdout and stderr together in `*output`.
int RunToExit(const std::vector<std::string>& argv, const std::string& log, std::string* output,
              absl::Duration timeout = absl::Seconds(30));

std::string ReadFile(const std::string& path);
void WriteFile(const std::string& path, const std::string& content);

struct FarmOptions {
  // TLS on the coordinator's port (issue 10). The first StartCoordinator runs
  // `musafarm-coordinator ca init` (with `ca_init_flags`) in its data dir;
  // each agent gets a certificate for its name from the farm CA in its work
  // dir's pki/ unless one is there; the CLI gets --ca. Off: every binary runs
  // with --insecure, so tests not about TLS keep their meaning.
  bool tls = false;
  std::vector<std::string> ca_init_flags;
};

// What GiveAgentCertificate issues.
struct AgentCertOptions {
  absl::Duration valid_from = -absl::Hours(1);  // not_before, from now
  absl::Duration valid_for = absl::Hours(24);   // not_after, from now
  const pki::Ca* ca = nullptr;                  // null: the farm's CA
};

// A farm on loopback: one coordinator (port 0, read back from its port file),
// agents, and the real CLI, in a fresh directory under the test's temp dir.
class Farm {
 public:
  explicit Farm(FarmOptions options = {});
  ~Farm();

  bool tls() const { return options_.tls; }
  // TLS farms: the CA certificate clients trust, and the CA (with its key).
  std::string ca_file() const { return data_dir() + "/pki/ca.crt"; }
  pki::Ca FarmCa() const;
  // The work dir of agent `instance` (StartAgent's name, or StartAgentInstance's instance).
  std::string agent_dir(const std::string& instance) const { return dir_ + "/agent-" + instance; }
  // Writes agent.key, agent.crt (for `common_name`) and the farm's ca.crt into
  // agent_dir(instance)/pki/, replacing what is there.
  void GiveAgentCertificate(const std::string& instance, const std::string& common_name,
                            const AgentCertOptions& options = {});

  const std::string& dir() const { return dir_; }
  std::string address() const;
  int port() const { return port_; }  // the coordinator's (0 before it first started)

  // Starts the coordinator; on a restart it listens on the same port again.
  void StartCoordinator(const std::vector<std::string>& extra_flags = {});
  void StopCoordinator(int sig);  // and waits for it
  Process* coordinator() { return coordinator_.get(); }

  Process* StartAgent(const std::string& name, const std::vector<std::string>& labels, int slots,
                      const std::vector<std::string>& extra_flags = {});
  // Agents started from now on run in `dir` (through `env -C`) instead of the
  // test's working directory, which is inside the build tree.
  void set_agent_cwd(std::string dir) { agent_cwd_ = std::move(dir); }
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

  // What the CLI is given as --coordinator from now on instead of address():
  // a list of coordinators started by the test itself (issue 20).
  void set_cli_coordinator(std::string coordinators) { cli_coordinator_ = std::move(coordinators); }
  // Runs `musafarm --coordinator ADDR args...` and waits for it. In a TLS farm
  // it runs as the farm's admin (MUSAFARM_TOKEN: admin_token()).
  CliResult Cli(const std::vector<std::string>& args, absl::Duration timeout = absl::Seconds(120));
  // The same with MUSAFARM_TOKEN=`token` ("": no token at all).
  CliResult CliWithToken(const std::string& token, const std::vector<std::string>& args,
                         absl::Duration timeout = absl::Seconds(120));
  // Makes an API token on the coordinator's host (`musafarm-coordinator token
  // create USER --role ROLE [extra_flags]`) and returns its text.
  std::string MakeToken(const std::string& user, const std::string& role,
                        const std::vector<std::string>& extra_flags = {});
  // TLS farms: the token made for the CLI when the coordinator first started.
  const std::string& admin_token() const { return admin_token_; }
  // Starts `musafarm --coordinator ADDR args...` in the background.
  std::unique_ptr<Process> CliAsync(const std::vector<std::string>& args, const std::string& log);

  std::string WritePipeline(const std::string& name, const std::string& yaml);
  // Returns the job id. `flags`: more `musafarm submit` flags (--param ...).
  std::string Submit(const std::string& pipeline_file, const std::vector<std::string>& flags = {});
  absl::StatusOr<v1::Job> Job(const std::string& id);
  std::vector<v1::Agent> Agents();
  bool WaitForJobEnd(const std::string& id, absl::Duration timeout = absl::Seconds(120));
  bool WaitForTaskState(const std::string& job, const std::string& task, v1::TaskState state,
                        absl::Duration timeout = absl::Seconds(60));

 private:
  Process* StartAgentProcess(const std::string& coordinator, const std::string& instance,
                             const std::string& name, const std::vector<std::string>& labels,
                             int slots, const std::vector<std::string>& extra_flags);

  std::string CliCoordinator() const;
  // --insecure, or what TLS needs: the CLI's flags.
  std::vector<std::string> CliSecurityFlags() const;

  const FarmOptions options_;
  std::string dir_;
  std::string agent_cwd_;
  int port_ = 0;
  int coordinator_starts_ = 0;
  std::unique_ptr<Process> coordinator_;
  std::map<std::string, std::unique_ptr<Process>> agents_;
  std::string admin_token_;  // TLS farms: what Cli() runs with
  std::string cli_coordinator_;
};

const v1::Task* FindTask(const v1::Job& job, const std::string& task_suffix);

// An exec pipeline of two cells of build -> test (python 3.8 and 3.9) whose
// 3.9 test fails: what `rerun --failed` reruns (tests of issue 16 and 13).
inline constexpr char kOneFailingCellPipeline[] = R"(name: bt
matrix:
  python: ["3.8", "3.9"]
stages:
  - name: build
    exec: ["true"]
  - name: test
    needs: [build]
    exec: ["sh", "-c", "test ${python} != 3.9"]
)";

}  // namespace musafarm::e2e
