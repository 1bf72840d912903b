#include "agent/executor/exec_executor.h"

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/executor/task_env.h"
#include "agent/executor/work_dir_collect.h"
#include "common/logging.h"
#include "common/subprocess.h"

namespace musafarm::agent {
namespace {

constexpr absl::Duration kDrainAfterExit = absl::Seconds(2);

class ProcessExecution final : public Execution {
 public:
  ProcessExecution(Child child, absl::Duration timeout, absl::Duration grace, ExecCallbacks cb,
                   std::string workdir, google::protobuf::RepeatedPtrField<std::string> collect)
      : child_(child),
        timeout_(timeout),
        grace_(grace),
        cb_(std::move(cb)),
        workdir_(std::move(workdir)),
        collect_(std::move(collect)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~ProcessExecution() override {
    Cancel();
    if (thread_.joinable()) thread_.join();
  }
  void Cancel() override { cancel_.store(true); }

 private:
  void Run() {
    const absl::Time deadline =
        timeout_ > absl::ZeroDuration() ? absl::Now() + timeout_ : absl::InfiniteFuture();
    absl::Time kill_at = absl::InfiniteFuture();
    bool terminating = false, timed_out = false, cancelled = false, complete = true;
    // The tick runs only while the main process is unreaped, so the group id
    // it signals cannot belong to anyone else.
    auto tick = [&] {
      if (!terminating && (cancel_.load() || absl::Now() >= deadline)) {
        cancelled = cancel_.load();
        timed_out = !cancelled;
        terminating = true;
        ::kill(-child_.pid, SIGTERM);
        kill_at = absl::Now() + grace_;
      }
      if (absl::Now() >= kill_at) {
        ::kill(-child_.pid, SIGKILL);
        kill_at = absl::InfiniteFuture();
      }
    };
    // Backpressure: while the agent has no room, the pipe is not read and the
    // process blocks writing to it; cancel and the deadline still act. Once
    // it is being stopped, or after it was reaped (only the pipe's rest is
    // left), output is taken as it comes.
    auto output = [&](std::string data) {
      cb_.on_output(std::move(data));
      AwaitOutputRoom(cb_, tick, [&] { return terminating || ChildReaped(child_.pid); });
    };
    const int status = Supervise(child_, output, tick, kDrainAfterExit, &complete);
    if (!complete) {
      cb_.on_output(
          "musafarm: the task exited but a process outside its process group still holds its "
          "output; no longer reading it\n");
    }
    ExitInfo info;
    info.cancelled = cancelled;
    info.timed_out = timed_out;
    if (WIFEXITED(status)) info.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) info.signal = WTERMSIG(status);
    // As docker_run: what the process left is collected unless it was cancelled.
    if (!cancelled) {
      info.files = CollectFromWorkDir(workdir_, collect_,
                                      [&](const std::string& line) { cb_.on_output(line + "\n"); });
    }
    cb_.on_exit(std::move(info));
  }

  const Child child_;
  const absl::Duration timeout_;
  const absl::Duration grace_;
  ExecCallbacks cb_;
  const std::string workdir_;
  const google::protobuf::RepeatedPtrField<std::string> collect_;
  std::atomic<bool> cancel_{false};
  std::thread thread_;
};

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
  EnvMap env = InheritedEnv();
  for (const auto& [k, v] : options_.extra_env) env[k] = v;
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
  return std::unique_ptr<Execution>(std::make_unique<ProcessExecution>(
      child, absl::Seconds(run.timeout_seconds()), options_.kill_grace, std::move(callbacks),
      workdir, run.exec().collect()));
}

}  // namespace musafarm::agent
