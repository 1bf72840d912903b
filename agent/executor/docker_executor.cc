#include "agent/executor/docker_executor.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/executor/artifact_names.h"
#include "agent/executor/docker_config.h"
#include "agent/executor/secret_files.h"
#include "agent/executor/task_env.h"
#include "common/subprocess.h"

namespace musafarm::agent {
namespace {

constexpr size_t kMaxHelperOutput = 16 * 1024;
constexpr absl::Duration kKillRetry = absl::Milliseconds(500);

using Env = std::map<std::string, std::string>;

// Processes: common/subprocess.h (shared with ExecExecutor).
constexpr absl::Duration kDrainAfterExit = absl::Seconds(2);

bool Succeeded(const std::optional<int>& status) {
  return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
}

// docker (and podman) say so in different words when a path is missing.
// What the docker CLI says when the daemon does not answer or died mid-call.
bool LooksLikeDaemonTrouble(absl::string_view output) {
  for (absl::string_view s : {"Cannot connect to the Docker daemon", "Is the docker daemon running",
                              "error during connect", "connection refused", "EOF",
                              "connection reset by peer"}) {
    if (absl::StrContains(output, s)) return true;
  }
  return false;
}

bool LooksNotFound(const std::string& output) {
  const std::string s = absl::AsciiStrToLower(output);
  return absl::StrContains(s, "no such container:path") ||
         absl::StrContains(s, "could not be found") ||
         absl::StrContains(s, "no such file or directory");
}

bool IsRemote(const std::string& context) {
  return absl::StrContains(context, "://") || absl::StartsWith(context, "git@") ||
         absl::StartsWith(context, "github.com/");
}

// Map fields in key order, so argv does not depend on the map's iteration order.
std::map<std::string, std::string> Sorted(
    const google::protobuf::Map<std::string, std::string>& m) {
  return {m.begin(), m.end()};
}

struct HelperResult {
  bool ok = false;
  std::string output;  // stdout and stderr, trimmed, at most kMaxHelperOutput
  std::string what;    // e.g. "exit 1"
  std::string Why() const { return output.empty() ? what : absl::StrCat(what, ": ", output); }
};

// Runs `docker ARGS...` (options.cli) in `dir` to completion, SIGKILLed after
// options.helper_timeout.
HelperResult RunHelper(const DockerOptions& options, const Env& env, const std::string& dir,
                       std::vector<std::string> args) {
  args.insert(args.begin(), options.cli);
  HelperResult h;
  const Child child = Spawn(args, env, dir);
  if (!child.error.empty()) {
    h.what = child.error;
    return h;
  }
  const absl::Time deadline = absl::Now() + options.helper_timeout;
  bool killed = false;
  const int status = Supervise(
      child,
      [&](std::string data) {
        h.output += data.substr(0, kMaxHelperOutput - std::min(kMaxHelperOutput, h.output.size()));
      },
      [&] {
        if (!killed && absl::Now() >= deadline) {
          ::kill(-child.pid, SIGKILL);
          killed = true;
        }
      },
      kDrainAfterExit, nullptr);
  h.output = std::string(absl::StripAsciiWhitespace(h.output));
  h.ok = !killed && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  h.what = killed ? absl::StrCat("no answer within ", absl::FormatDuration(options.helper_timeout))
           : WIFEXITED(status) ? absl::StrCat("exit ", WEXITSTATUS(status))
                               : absl::StrCat("signal ", WTERMSIG(status));
  return h;
}

// The ids in `ps -q`-style output; anything else (a warning on stderr shares
// the pipe) is skipped.
std::vector<std::string> Ids(const std::string& output) {
  std::vector<std::string> ids;
  for (absl::string_view id : absl::StrSplit(output, absl::ByAnyChar(" \t\r\n"))) {
    if (!id.empty() && id.find_first_not_of("0123456789abcdef") == absl::string_view::npos) {
      ids.emplace_back(id);
    }
  }
  return ids;
}

// `docker version` asks the server too: it fails when the daemon does not answer.
std::vector<std::string> PingArgs() { return {"version", "--format", "{{.Server.Version}}"}; }

DockerOptions PingOptions(DockerOptions options) {
  options.helper_timeout = options.ping_timeout;
  return options;
}

Env CliEnv(const DockerOptions& options) {
  Env env = InheritedEnv();
  if (!options.docker_host.empty()) env["DOCKER_HOST"] = options.docker_host;
  return env;
}

class DockerExecution final : public Execution {
 public:
  DockerExecution(const DockerOptions& options, v1::Assignment assignment, EnvMap secrets,
                  std::string workdir, ExecCallbacks cb)
      : options_(options),
        as_(std::move(assignment)),
        secrets_(std::move(secrets)),
        workdir_(std::move(workdir)),
        name_(DockerContainerName(as_.attempt_id())),
        deadline_(as_.run().timeout_seconds() > 0
                      ? absl::Now() + absl::Seconds(as_.run().timeout_seconds())
                      : absl::InfiniteFuture()),
        cb_(std::move(cb)) {
    env_ = CliEnv(options_);
    thread_ = std::thread([this] { Run(); });
  }
  ~DockerExecution() override {
    Cancel();
    if (thread_.joinable()) thread_.join();
  }
  void Cancel() override { cancel_.store(true); }

 private:
  enum class Stop { kNone, kCancelled, kTimedOut };

  // Everything below runs on thread_.
  void Run() {
    ExitInfo info;
    switch (as_.run().kind_case()) {
      case v1::StageSpec::kDockerBuild:
        info = Build();
        break;
      case v1::StageSpec::kDockerRun:
        info = Container();
        break;
      default:
        info = Push(as_.run().docker_push().images());
        break;
    }
    info.cancelled = stop_ == Stop::kCancelled;
    info.timed_out = stop_ == Stop::kTimedOut;
    // A failure while the daemon does not answer is the host's, not the
    // stage's: the ping tells the two apart (a failing build prints whatever
    // it likes; a dead daemon does not answer).
    // Pinged only when the CLI's words or a failed `rm -f` point at the
    // daemon: an ordinary failure costs nothing more.
    const bool failed = info.exit_code != 0 || info.signal != 0 || !info.error.empty();
    if (failed && !info.cancelled && daemon_hint_) {
      const HelperResult ping = RunHelper(PingOptions(options_), env_, "", PingArgs());
      if (!ping.ok) {
        info.host_lost = absl::StrCat("docker daemon unreachable: ", ping.Why());
        info.daemon_lost = true;
        Say(absl::StrCat(info.host_lost, "; the attempt goes back to the coordinator"));
      }
    }
    cb_.on_exit(std::move(info));
  }

  // `context: input:NAME` (issue 17): the job input's tree, fetched by digest
  // into the agent's cache and linked into <workdir>/context. Returns the
  // directory, or "" after saying why it cannot be had.
  std::string MaterializeContext(const v1::DockerBuildStage& b, ExitInfo* info) {
    const std::string dir = absl::StrCat(workdir_, "/context");
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);  // an earlier attempt's, in the same work dir
    absl::Status made = options_.materialize_tree
                            ? options_.materialize_tree(b.context_tree(), dir)
                            : absl::FailedPreconditionError("this agent cannot fetch job inputs");
    if (made.ok()) return dir;
    Say(absl::StrCat("cannot fetch input '", b.context_input(), "': ", made.message()));
    info->exit_code = 1;
    info->error = std::string(made.message());
    return "";
  }

  ExitInfo Build() {
    v1::DockerBuildStage b = as_.run().docker_build();
    if (!b.context_input().empty()) {
      ExitInfo failed;
      std::string dir = MaterializeContext(b, &failed);
      if (dir.empty()) return failed;
      b.set_context(std::move(dir));
    }
    // Secrets need BuildKit (RUN --mount=type=secret). Its progress is then
    // made plain: every step's whole output in the log, as the legacy builder
    // writes it, whatever the CLI guesses about its (piped) terminal.
    const bool buildkit = options_.buildkit || !secrets_.empty();
    std::vector<std::string> args = {"build"};
    if (!secrets_.empty()) args.push_back("--progress=plain");
    if (!b.network().empty()) args.push_back("--network=" + b.network());
    if (!b.target().empty()) args.push_back("--target=" + b.target());
    // The CLI reads a relative -f from its working directory; the stage means
    // the context. A remote context takes the path inside it as given.
    std::string file = b.dockerfile();
    if (!IsRemote(b.context())) {
      if (file.empty()) file = "Dockerfile";
      if (file[0] != '/') file = absl::StrCat(b.context(), "/", file);
    }
    if (!file.empty()) args.push_back("--file=" + file);
    AddLabels(&args);
    for (const auto& [k, v] : Sorted(b.build_args())) {
      args.push_back(absl::StrCat("--build-arg=", k, "=", v));
    }
    Env env = env_;
    env["DOCKER_BUILDKIT"] = buildkit ? "1" : "0";
    // `env=NAME`: the CLI reads the value from its own environment, so argv
    // holds only the name.
    for (const auto& [name, value] : secrets_) {
      args.push_back(absl::StrCat("--secret=id=", absl::AsciiStrToLower(name), ",env=", name));
      env[name] = value;
    }
    for (const std::string& tag : b.tags()) args.push_back("--tag=" + tag);
    args.push_back("--force-rm");  // a failed or cancelled step's container goes too
    args.push_back(b.context());
    const std::optional<int> status = Stream(args, env, nullptr);
    if (Interrupted(status)) {
      RemoveLabelled();
      return ToExit(status);
    }
    if (!Succeeded(status) || !b.push()) return ToExit(status);
    return Push(b.tags());
  }

  ExitInfo Push(const google::protobuf::RepeatedPtrField<std::string>& images) {
    ExitInfo info;
    // A docker_push stage's registry_auth: credentials in a DOCKER_CONFIG of
    // this attempt's own, for these pushes only, removed when they are done.
    Env env = env_;
    std::unique_ptr<TempDockerConfig> config;
    const std::string& auth = as_.run().kind_case() == v1::StageSpec::kDockerPush
                                  ? as_.run().docker_push().registry_auth()
                                  : std::string();
    if (!auth.empty()) {
      auto secret = secrets_.find(auth);
      absl::StatusOr<std::unique_ptr<TempDockerConfig>> written =
          secret == secrets_.end()
              ? absl::FailedPreconditionError(absl::StrCat(
                    "registry_auth secret '", auth, "' was not supplied (submit --secret ", auth,
                    ")"))
              : TempDockerConfig::Write(workdir_, absl::StrCat(as_.attempt_id()),
                                        {images.begin(), images.end()}, secret->second);
      if (!written.ok()) {
        Say(absl::StrCat("cannot pass the registry credentials: ", written.status().message()));
        info.exit_code = 1;
        info.error = std::string(written.status().message());
        return info;
      }
      config = *std::move(written);
      env["DOCKER_CONFIG"] = config->path();
    }
    for (const std::string& image : images) {
      const std::optional<int> status = Stream({"push", image}, env, nullptr);
      info = ToExit(status);
      if (!Succeeded(status)) break;
    }
    return info;
  }

  ExitInfo Container() {
    const v1::DockerRunStage& r = as_.run().docker_run();
    std::vector<std::string> args = {"run", "--name=" + name_};
    AddLabels(&args);
    if (r.privileged()) args.push_back("--privileged");
    if (!r.shm_size().empty()) args.push_back("--shm-size=" + r.shm_size());
    for (const std::string& d : r.devices()) args.push_back("--device=" + d);
    for (const v1::Mount& m : r.mounts()) {
      args.push_back(
          absl::StrCat("--volume=", m.source(), ":", m.target(), m.read_only() ? ":ro" : ""));
    }
    if (!r.network().empty()) args.push_back("--network=" + r.network());
    if (!r.user().empty()) args.push_back("--user=" + r.user());
    if (!r.workdir().empty()) args.push_back("--workdir=" + r.workdir());
    args.push_back("--init");  // PID 1 that forwards SIGTERM: a bare `sleep` would ignore it
    // Secrets are files, /run/secrets/<name lowercased> (BuildKit's and
    // Compose's convention), bind-mounted read-only from a private tmpfs
    // directory. Not environment variables: the daemon keeps a container's
    // environment in its config and containerd's metadata database, which
    // outlive the container on disk.
    SecretFiles files;
    if (!secrets_.empty()) {
      absl::Status written = files.Write(
          options_.secrets_dir,
          options_.secrets_owner.empty() ? options_.farm : options_.secrets_owner,
          as_.attempt_id(), secrets_);
      if (!written.ok()) {
        Say(absl::StrCat("cannot pass the secrets: ", written.message()));
        ExitInfo failed;
        failed.exit_code = 1;
        failed.error = std::string(written.message());
        return failed;
      }
      for (const auto& [name, path] : files.paths()) {
        args.push_back(absl::StrCat("--mount=type=bind,source=", path, ",target=/run/secrets/",
                                    absl::AsciiStrToLower(name), ",readonly"));
      }
    }
    // Ours first, then the stage's (which wins, as for exec stages), then the
    // GPUs (which the stage cannot widen).
    Env env = {{"MUSAFARM_TASK_ID", as_.task_id()},
               {"MUSAFARM_ATTEMPT_ID", absl::StrCat(as_.attempt_id())},
               {"MUSAFARM_JOB_ID", as_.job_id()}};
    for (const auto& [k, v] : as_.run().env()) env[k] = v;
    for (const auto& [k, v] : GpuEnv(options_.gpu_vendor, as_)) env[k] = v;
    for (const auto& [k, v] : env) args.push_back(absl::StrCat("--env=", k, "=", v));
    const Env& cli_env = env_;
    args.push_back(r.image());
    args.insert(args.end(), r.command().begin(), r.command().end());

    // `kill` fails until the container exists (the CLI may still be pulling):
    // retried; it is reported once.
    bool kill_reported = false;
    const std::optional<int> status = Stream(args, cli_env, [&] {
      const bool ok = Helper({"kill", name_}, /*report=*/!kill_reported).ok;
      kill_reported = kill_reported || !ok;
      return ok;
    });
    ExitInfo info = ToExit(status);
    if (status && stop_ != Stop::kCancelled) Collect(r, &info);
    // `rm -f` of a container that is gone succeeds: a failure is the daemon's.
    if (!Helper({"rm", "-f", name_}).ok) {
      daemon_hint_ = true;
      Pending({"container", name_});
    }
    if (Interrupted(status)) RemoveLabelled();
    return info;
  }

  void Collect(const v1::DockerRunStage& r, ExitInfo* info) {
    if (r.collect().empty()) return;
    const std::string dir = workdir_ + "/artifacts";
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) {
      Say(absl::StrCat("cannot create ", dir, ": ", ec.message()));
      return;
    }
    std::set<std::string> used;
    for (const std::string& path : r.collect()) {
      const std::string name = UniqueArtifactName(ArtifactBasename(path), &used);
      const std::string dest = absl::StrCat(dir, "/", name);
      const HelperResult h = Helper({"cp", absl::StrCat(name_, ":", path), dest}, false);
      if (h.ok) {
        info->files.push_back({name, dest, path});
      } else if (LooksNotFound(h.output)) {
        Say(absl::StrCat(path, " not found in the container"));
      } else {
        Say(absl::StrCat("cannot collect ", path, ": ", h.Why()));
      }
    }
  }

  // After an interrupted run or build: containers of this attempt that remain.
  void RemoveLabelled() {
    std::vector<std::string> ps = {"ps", "-aq", "--filter=label=musafarm.farm=" + options_.farm};
    if (!options_.agent.empty()) ps.push_back("--filter=label=musafarm.agent=" + options_.agent);
    ps.push_back(absl::StrCat("--filter=label=musafarm.attempt=", as_.attempt_id()));
    const HelperResult listed = Helper(ps);
    if (!listed.ok) {
      Pending({"attempt", absl::StrCat(as_.attempt_id())});
      return;
    }
    std::vector<std::string> rm = {"rm", "-f"};
    for (std::string& id : Ids(listed.output)) rm.push_back(std::move(id));
    if (rm.size() > 2 && !Helper(rm).ok) Pending({"attempt", absl::StrCat(as_.attempt_id())});
  }

  // A removal that failed (the daemon is likely down): retried when it is back.
  void Pending(PendingRemovals::Entry e) {
    if (options_.pending_removals == nullptr) return;
    Say(absl::StrCat("will remove ", e.kind, " ", e.target, " when the daemon answers again"));
    options_.pending_removals->Add(std::move(e));
  }

  void AddLabels(std::vector<std::string>* args) const {
    args->push_back("--label=musafarm.farm=" + options_.farm);
    if (!options_.agent.empty()) args->push_back("--label=musafarm.agent=" + options_.agent);
    args->push_back("--label=musafarm.task=" + as_.task_id());
    args->push_back(absl::StrCat("--label=musafarm.attempt=", as_.attempt_id()));
  }

  // Notes cancel or timeout (once; it sticks). True when the attempt must stop.
  bool CheckStop() {
    if (stop_ == Stop::kNone) {
      if (cancel_.load()) {
        stop_ = Stop::kCancelled;
      } else if (absl::Now() >= deadline_) {
        stop_ = Stop::kTimedOut;
      }
    }
    return stop_ != Stop::kNone;
  }

  // Stopped while a command ran, or the CLI died of a signal.
  bool Interrupted(const std::optional<int>& status) const {
    return stop_ != Stop::kNone || (status && WIFSIGNALED(*status));
  }

  // Runs `docker ARGS...`, streaming its output into the log. On cancel or
  // timeout: `soft_stop` (if given) until it succeeds, every kKillRetry; SIGTERM
  // to the CLI's group after kill_grace (at once without soft_stop); SIGKILL one
  // grace later. Returns the wait status; nullopt when it did not run (stopped
  // before it started, or could not start: then error_ says why).
  std::optional<int> Stream(std::vector<std::string> args, const Env& env,
                            const std::function<bool()>& soft_stop) {
    if (CheckStop()) return std::nullopt;
    args.insert(args.begin(), options_.cli);
    const Child child = Spawn(args, env, workdir_);
    if (!child.error.empty()) {
      error_ = child.error;
      Say(error_);
      return std::nullopt;
    }
    if (cb_.on_process) cb_.on_process(child.pid);
    bool stopping = false;
    absl::Time soft_at = absl::InfiniteFuture(), term_at = absl::InfiniteFuture(),
               kill_at = absl::InfiniteFuture();
    // The tick runs only while the CLI is unreaped (see ExecExecutor).
    std::function<void()> tick = [&] {
      if (!stopping && CheckStop()) {
        stopping = true;
        Say(stop_ == Stop::kCancelled
                ? "cancelled; stopping"
                : absl::StrCat("timed out after ", as_.run().timeout_seconds(), "s; stopping"));
        const absl::Time now = absl::Now();
        if (soft_stop) {
          soft_at = now;
          term_at = now + options_.kill_grace;
        } else {
          term_at = now;
        }
      }
      if (absl::Now() >= soft_at) {
        soft_at = soft_stop() ? absl::InfiniteFuture() : absl::Now() + kKillRetry;
      }
      if (absl::Now() >= term_at) {
        ::kill(-child.pid, SIGTERM);
        term_at = absl::InfiniteFuture();
        kill_at = absl::Now() + options_.kill_grace;
      }
      if (absl::Now() >= kill_at) {
        ::kill(-child.pid, SIGKILL);
        kill_at = absl::InfiniteFuture();
      }
    };
    // Backpressure as in ExecExecutor: the CLI blocks on its full pipe (what
    // the container then does is up to the daemon's attach buffering).
    auto output = [&](std::string data) {
      daemon_hint_ = daemon_hint_ || LooksLikeDaemonTrouble(data);
      cb_.on_output(std::move(data));
      AwaitOutputRoom(cb_, tick, [&] { return stopping || ChildReaped(child.pid); });
    };
    return Supervise(child, output, tick, kDrainAfterExit, nullptr);
  }

  // Runs `docker ARGS...` to completion with a bounded wait, its output kept
  // out of the log. Unless `report` is false, a failure is noted in the log.
  HelperResult Helper(std::vector<std::string> args, bool report = true) {
    const std::string shown = absl::StrJoin(args, " ");
    HelperResult h = RunHelper(options_, env_, workdir_, std::move(args));
    if (!h.ok && report) Say(absl::StrCat("docker ", shown, " failed: ", h.Why()));
    return h;
  }

  ExitInfo ToExit(const std::optional<int>& status) const {
    ExitInfo info;
    if (!status) {
      if (!error_.empty()) {
        info.exit_code = 127;
        info.error = error_;
      }
    } else if (WIFEXITED(*status)) {
      info.exit_code = WEXITSTATUS(*status);
    } else if (WIFSIGNALED(*status)) {
      info.signal = WTERMSIG(*status);
    }
    return info;
  }

  void Say(const std::string& line) { cb_.on_output(absl::StrCat("musafarm: ", line, "\n")); }

  bool daemon_hint_ = false;  // the CLI's output or a helper pointed at the daemon
  const DockerOptions options_;
  const v1::Assignment as_;
  const EnvMap secrets_;  // StageSecrets(as_): docker_build and docker_run pass them on
  const std::string workdir_;
  const std::string name_;
  const absl::Time deadline_;
  ExecCallbacks cb_;
  Env env_;  // the CLI's: the agent's own plus DOCKER_HOST
  Stop stop_ = Stop::kNone;
  std::string error_;  // the CLI could not be started
  std::atomic<bool> cancel_{false};
  std::thread thread_;  // last: starts once everything above is set
};

absl::Status NotFlag(const std::string& what, const std::string& value) {
  if (value.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (value[0] == '-') {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", value, "' starts with '-' (it would be read as a flag)"));
  }
  return absl::OkStatus();
}

absl::Status Validate(const v1::StageSpec& run) {
  switch (run.kind_case()) {
    case v1::StageSpec::kDockerBuild: {
      const v1::DockerBuildStage& b = run.docker_build();
      if (!b.context_input().empty()) {
        if (b.context_tree().sha256().empty()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "build context input '", b.context_input(), "' carries no tree digest"));
        }
      } else if (absl::Status s = NotFlag("build context", b.context()); !s.ok()) {
        return s;
      }
      if (b.tags().empty())
        return absl::InvalidArgumentError("docker_build needs at least one tag");
      for (const std::string& t : b.tags()) {
        if (absl::Status s = NotFlag("tag", t); !s.ok()) return s;
      }
      return absl::OkStatus();
    }
    case v1::StageSpec::kDockerRun: {
      const v1::DockerRunStage& r = run.docker_run();
      if (absl::Status s = NotFlag("image", r.image()); !s.ok()) return s;
      for (const v1::Mount& m : r.mounts()) {
        if (m.source().empty() || m.target().empty() || absl::StrContains(m.source(), ':') ||
            absl::StrContains(m.target(), ':')) {
          return absl::InvalidArgumentError(absl::StrCat(
              "mount '", m.source(), "' -> '", m.target(), "': both must be set, without ':'"));
        }
      }
      for (const std::string& c : r.collect()) {
        if (c.empty()) return absl::InvalidArgumentError("empty collect path");
      }
      return absl::OkStatus();
    }
    case v1::StageSpec::kDockerPush:
      if (run.docker_push().images().empty()) {
        return absl::InvalidArgumentError("docker_push needs at least one image");
      }
      for (const std::string& i : run.docker_push().images()) {
        if (absl::Status s = NotFlag("image", i); !s.ok()) return s;
      }
      return absl::OkStatus();
    default:
      return absl::UnimplementedError(
          "the docker executor runs only docker_build, docker_run and docker_push stages");
  }
}

}  // namespace

std::string DockerContainerName(uint64_t attempt_id) {
  return absl::StrCat("musafarm-", attempt_id);
}

AttemptTraces DockerExecutor::Traces(const v1::Assignment& assignment) const {
  AttemptTraces t = Executor::Traces(assignment);
  if (assignment.run().has_docker_run()) t.container = DockerContainerName(t.attempt_id);
  if (assignment.run().has_docker_build()) {
    t.images.assign(assignment.run().docker_build().tags().begin(),
                    assignment.run().docker_build().tags().end());
  }
  return t;
}

absl::Status DockerExecutor::Ping() const {
  const HelperResult h = RunHelper(PingOptions(options_), CliEnv(options_), "", PingArgs());
  if (h.ok) return absl::OkStatus();
  return absl::UnavailableError(h.Why());
}

std::vector<std::string> DockerExecutor::RetryPendingRemovals() {
  if (options_.pending_removals == nullptr) return {};
  const Env env = CliEnv(options_);
  return options_.pending_removals->Retry([&](const PendingRemovals::Entry& e) -> absl::Status {
    std::vector<std::string> rm;
    if (e.kind == "container") {
      rm = {"rm", "-f", e.target};
    } else if (e.kind == "image") {
      rm = {"image", "rm", e.target};
    } else {  // "attempt": its containers, by label
      std::vector<std::string> ps = {"ps", "-aq", "--no-trunc",
                                     "--filter=label=musafarm.farm=" + options_.farm};
      if (!options_.agent.empty()) ps.push_back("--filter=label=musafarm.agent=" + options_.agent);
      ps.push_back("--filter=label=musafarm.attempt=" + e.target);
      const HelperResult listed = RunHelper(options_, env, "", ps);
      if (!listed.ok) return absl::UnavailableError(listed.Why());
      rm = {"rm", "-f"};
      for (std::string& id : Ids(listed.output)) rm.push_back(std::move(id));
      if (rm.size() == 2) return absl::OkStatus();  // none left
    }
    const HelperResult h = RunHelper(options_, env, "", rm);
    // `rm -f` succeeds for a container that is gone; an image that is gone says so.
    if (h.ok || (e.kind == "image" && absl::StrContains(absl::AsciiStrToLower(h.output),
                                                         "no such image"))) {
      return absl::OkStatus();
    }
    return absl::UnavailableError(h.Why());
  });
}

std::vector<std::string> DockerExecutor::RemoveLeftovers(
    const std::vector<AttemptTraces>& recorded) {
  // What an earlier run could not remove while its daemon was down.
  std::vector<std::string> lines = RetryPendingRemovals();
  const Env env = CliEnv(options_);
  auto run = [&](std::vector<std::string> args) {
    const std::string shown = absl::StrJoin(args, " ");
    HelperResult h = RunHelper(options_, env, "", std::move(args));
    if (!h.ok) lines.push_back(absl::StrCat("docker ", shown, " failed: ", h.Why()));
    return h;
  };
  std::set<std::string> removed;  // containers, by id or name
  if (!options_.agent.empty()) {
    const HelperResult ps =
        run({"ps", "-aq", "--no-trunc", "--filter=label=musafarm.farm=" + options_.farm,
             "--filter=label=musafarm.agent=" + options_.agent});
    std::vector<std::string> ids = ps.ok ? Ids(ps.output) : std::vector<std::string>{};
    if (!ps.ok && options_.pending_removals != nullptr) {
      // The daemon does not answer: the recorded attempts' containers are
      // removed (by their labels) once it does (issue 16, item 3).
      for (const AttemptTraces& a : recorded) {
        if (a.kind == "docker_run" || a.kind == "docker_build") {
          options_.pending_removals->Add({"attempt", absl::StrCat(a.attempt_id)});
        }
      }
    }
    if (!ids.empty()) {
      std::vector<std::string> rm = {"rm", "-f"};
      rm.insert(rm.end(), ids.begin(), ids.end());
      if (run(rm).ok) {
        lines.push_back(absl::StrCat("removed ", ids.size(),
                                     " container(s) of an earlier run: ", absl::StrJoin(ids, " ")));
        removed.insert(ids.begin(), ids.end());
      }
    }
  }
  for (const AttemptTraces& a : recorded) {
    const std::string attempt = absl::StrCat(a.attempt_id);
    if (!a.container.empty()) {
      // Older containers carry no agent label: farm and attempt must match.
      HelperResult inspect = RunHelper(options_, env, "",
                                       {"container", "inspect", "--format",
                                        "{{.Id}} {{index .Config.Labels \"musafarm.farm\"}} "
                                        "{{index .Config.Labels \"musafarm.attempt\"}}",
                                        a.container});
      const std::vector<std::string> f =
          absl::StrSplit(inspect.output, ' ', absl::SkipWhitespace());
      if (!inspect.ok && !absl::StrContains(inspect.output, "No such") &&
          options_.pending_removals != nullptr) {
        options_.pending_removals->Add({"container", a.container});  // daemon away: later
      }
      if (inspect.ok && f.size() == 3 && f[1] == options_.farm && f[2] == attempt &&
          removed.count(f[0]) == 0) {
        if (run({"rm", "-f", a.container}).ok) {
          lines.push_back(absl::StrCat("removed container ", a.container, " of task ", a.task_id,
                                       " attempt ", attempt));
        }
      }
    }
    for (const std::string& tag : a.images) {
      HelperResult inspect = RunHelper(options_, env, "",
                                       {"image", "inspect", "--format",
                                        "{{index .Config.Labels \"musafarm.farm\"}} "
                                        "{{index .Config.Labels \"musafarm.agent\"}} "
                                        "{{index .Config.Labels \"musafarm.attempt\"}}",
                                        tag});
      const std::vector<std::string> f =
          absl::StrSplit(inspect.output, ' ', absl::SkipWhitespace());
      if (!inspect.ok || f.size() != 3 || f[0] != options_.farm || f[1] != options_.agent ||
          f[2] != attempt) {
        continue;  // absent (the build never finished), or since built by someone else
      }
      if (run({"image", "rm", tag}).ok) {
        lines.push_back(absl::StrCat("removed image ", tag, " of task ", a.task_id, " attempt ",
                                     attempt, " (its build or push did not finish)"));
      }
    }
  }
  return lines;
}

absl::StatusOr<std::unique_ptr<Execution>> DockerExecutor::Start(const v1::Assignment& assignment,
                                                                 const std::string& workdir,
                                                                 ExecCallbacks callbacks) {
  if (absl::Status s = Validate(assignment.run()); !s.ok()) return s;
  absl::StatusOr<EnvMap> secrets = StageSecrets(assignment);
  if (!secrets.ok()) return secrets.status();
  for (const auto& [name, value] : *secrets) {
    // The CLI gets the value in its own environment: a name the CLI (or the
    // loader) reads itself would change how it runs, not what the task sees.
    if (name == "PATH" || name == "HOME" || absl::StartsWith(name, "DOCKER_") ||
        absl::StartsWith(name, "LD_")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "secret name '", name, "' is reserved for the docker CLI's own environment"));
    }
  }
  return std::unique_ptr<Execution>(std::make_unique<DockerExecution>(
      options_, assignment, *std::move(secrets), workdir, std::move(callbacks)));
}

}  // namespace musafarm::agent
