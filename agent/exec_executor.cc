#include "agent/exec_executor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

extern char** environ;

namespace musafarm::agent {
namespace {

constexpr size_t kReadChunk = 64 * 1024;
constexpr absl::Duration kDrainAfterExit = absl::Seconds(2);

class ProcessExecution final : public Execution {
 public:
  ProcessExecution(pid_t pid, int out_fd, absl::Duration timeout, absl::Duration grace,
                   ExecCallbacks cb)
      : pid_(pid), out_fd_(out_fd), timeout_(timeout), grace_(grace), cb_(std::move(cb)) {
    thread_ = std::thread([this] { Run(); });
  }
  ~ProcessExecution() override {
    Cancel();
    if (thread_.joinable()) thread_.join();
  }
  void Cancel() override { cancel_.store(true); }

 private:
  void Run() {
    const absl::Time start = absl::Now();
    const absl::Time deadline =
        timeout_ > absl::ZeroDuration() ? start + timeout_ : absl::InfiniteFuture();
    absl::Time kill_at = absl::InfiniteFuture();
    absl::Time drain_until = absl::InfiniteFuture();
    bool terminating = false, timed_out = false, cancelled = false, exited = false, eof = false;
    int status = 0;
    std::string buf(kReadChunk, '\0');
    // Until the main process has exited, and then until its output ends (or
    // the drain deadline passes).
    while (!exited || (!eof && absl::Now() < drain_until)) {
      // Signals go to the group only while the leader is unreaped: until then
      // its pid, and so the group id, cannot be reused by anyone else.
      if (!exited && !terminating && (cancel_.load() || absl::Now() >= deadline)) {
        cancelled = cancel_.load();
        timed_out = !cancelled;
        terminating = true;
        ::kill(-pid_, SIGTERM);
        kill_at = absl::Now() + grace_;
      }
      if (!exited && terminating && absl::Now() >= kill_at) {
        ::kill(-pid_, SIGKILL);
        kill_at = absl::InfiniteFuture();
      }
      struct pollfd p = {out_fd_, POLLIN, 0};
      if (eof) {
        absl::SleepFor(absl::Milliseconds(20));  // output closed; waiting for the exit
      } else if (::poll(&p, 1, 50) > 0) {  // short, so cancel and timeouts act within 50 ms
        ssize_t r = ::read(out_fd_, buf.data(), buf.size());
        if (r > 0) {
          cb_.on_output(buf.substr(0, static_cast<size_t>(r)));
        } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
          eof = true;
        }
      }
      if (!exited) {
        siginfo_t info = {};
        // WNOWAIT: see the exit but leave the zombie, so the group id stays ours
        // for the clean-up kill below.
        if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == pid_) {
          exited = true;
          ::kill(-pid_, SIGKILL);  // whatever the task left behind in its group goes too
          ::waitpid(pid_, &status, 0);
          // A descendant that left the group (setsid) may still hold the pipe:
          // read what is there, but do not wait for it forever.
          drain_until = absl::Now() + kDrainAfterExit;
        }
      }
    }
    if (!eof) {
      cb_.on_output(
          "musafarm: the task exited but a process outside its process group still holds its "
          "output; no longer reading it\n");
    }
    ::close(out_fd_);
    ExitInfo info;
    info.cancelled = cancelled;
    info.timed_out = timed_out;
    if (WIFEXITED(status)) info.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) info.signal = WTERMSIG(status);
    cb_.on_exit(std::move(info));
  }

  const pid_t pid_;
  const int out_fd_;
  const absl::Duration timeout_;
  const absl::Duration grace_;
  ExecCallbacks cb_;
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

  // Environment: the agent's own, then ours, then the stage's (which wins).
  std::map<std::string, std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq != nullptr) env[std::string(*e, static_cast<size_t>(eq - *e))] = std::string(eq + 1);
  }
  for (const auto& [k, v] : options_.extra_env) env[k] = v;
  env["MUSAFARM_TASK_ID"] = assignment.task_id();
  env["MUSAFARM_ATTEMPT_ID"] = absl::StrCat(assignment.attempt_id());
  env["MUSAFARM_JOB_ID"] = assignment.job_id();
  env["MUSAFARM_WORKDIR"] = workdir;
  for (const auto& [k, v] : run.env()) env[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> c_argv, c_env;
  for (std::string& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  for (std::string& e : env_strings) c_env.push_back(e.data());
  c_env.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawn_file_actions_addchdir_np(&actions, workdir.c_str());
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group, so cancel reaches every descendant
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);  // the agent blocks SIGTERM; the task must not
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  // posix_spawnp searches PATH of the agent, which is also what the task sees
  // unless the stage overrides PATH.
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, c_argv[0], &actions, &attr, c_argv.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    return std::unique_ptr<Execution>(std::make_unique<FailedExecution>(
        absl::StrCat("cannot run '", argv[0], "': ", std::strerror(rc)), std::move(callbacks)));
  }
  return std::unique_ptr<Execution>(
      std::make_unique<ProcessExecution>(pid, fds[0], absl::Seconds(run.timeout_seconds()),
                                         options_.kill_grace, std::move(callbacks)));
}

}  // namespace musafarm::agent
