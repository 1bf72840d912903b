#include "agent/executor/exec_executor.h"

#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/executor/task_env.h"
#include "common/subprocess.h"

namespace musafarm::agent {
namespace {

// An execution that failed before a process existed: reports at once.
class FailedExecution final : public Execution {
 public:
  explicit FailedExecution(std::string error, ExecCallbacks cb) {
    thread_ = std::thread([error = std::move(error), cb = std::move(cb)]() mutable {
      cb.on_output(absl::StrCat("musafarm: ", error, "\n"));
      ExitInfo info;
      info.exit_code = 127;
      info.error = error;
      cb.on_exit(std::move(info));
    });
  }
  ~FailedExecution() override {
    if (thread_.joinable()) thread_.join();
  }
  void Cancel() override {}

 private:
  std::thread thread_;
};

}  // namespace

ExecExecutor::ExecExecutor(ExecOptions options)
    : options_(std::move(options)), base_env_(InheritedEnv()) {
  for (const auto& [k, v] : options_.extra_env) base_env_[k] = v;
}

absl::StatusOr<std::unique_ptr<Execution>> ExecExecutor::Start(const v1::Assignment& assignment,
                                                               const std::string& workdir,
                                                               ExecCallbacks callbacks) {
  const v1::StageSpec& run = assignment.run();
  if (run.kind_case() != v1::StageSpec::kExec) {
    return absl::UnimplementedError("this agent runs only 'exec' stages");
  }
  std::vector<std::string> argv;
  if (run.exec().shell()) {
    if (run.exec().argv_size() != 1) {
      return absl::InvalidArgumentError("a shell stage has exactly one script");
    }
    argv = {"/bin/sh", "-c", run.exec().argv(0)};
  } else {
    argv.assign(run.exec().argv().begin(), run.exec().argv().end());
  }
  if (argv.empty() || argv[0].empty()) return absl::InvalidArgumentError("empty argv");

  // Environment: the agent's own, then ours, then the stage's (which wins over
  // those two), then its secrets and GPUs.
  EnvMap env = base_env_;
  env["MUSAFARM_TASK_ID"] = assignment.task_id();
  env["MUSAFARM_ATTEMPT_ID"] = absl::StrCat(assignment.attempt_id());
  env["MUSAFARM_JOB_ID"] = assignment.job_id();
  env["MUSAFARM_WORKDIR"] = workdir;
  for (const auto& [k, v] : run.env()) env[k] = v;
  // Secrets go in the environment, never in argv (which any user on the host
  // can read in /proc); the GPU variables last, so that a stage cannot widen
  // its own GPU set.
  absl::StatusOr<EnvMap> secrets = StageSecrets(assignment);
  if (!secrets.ok()) return secrets.status();
  for (const auto& [k, v] : *secrets) env[k] = v;
  for (const auto& [k, v] : GpuEnv(options_.gpu_vendor, assignment, /*host_process=*/true)) env[k] = v;

  // posix_spawnp searches the agent's PATH, which is also what the task sees
  // unless the stage overrides PATH.
  Child child = Spawn(argv, env, workdir);
  if (!child.error.empty()) {
    return std::unique_ptr<Execution>(
        std::make_unique<FailedExecution>(child.error, std::move(callbacks)));
  }
  if (callbacks.on_process) callbacks.on_process(child.pid);
  WatchedProcess watched;
  watched.child = child;
  watched.timeout = absl::Seconds(run.timeout_seconds());
  watched.grace = options_.kill_grace;
  watched.callbacks = std::move(callbacks);
  watched.workdir = workdir;
  watched.collect = run.exec().collect();
  // Copying files back, and the agent's probe of an attempt's GPUs at its
  // exit, may take long: those end on a thread of their own.
  watched.slow_end = run.exec().collect_size() > 0 || assignment.gpu_ids_size() > 0;
  return reaper_.Watch(std::move(watched));
}

}  // namespace musafarm::agent
