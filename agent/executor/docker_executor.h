#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "agent/executor/executor.h"
#include "agent/executor/pending_removals.h"

namespace musafarm::agent {

struct DockerOptions {
  // The engine's CLI, run as an argv vector (never through a shell). Debian's
  // client by default; podman works with the same argv.
  std::string cli = "/usr/bin/docker";
  // DOCKER_HOST for the CLI, e.g. "unix:///run/mf/docker.sock"; "" = inherit the agent's.
  std::string docker_host;
  // Value of the musafarm.farm label on everything the agent creates.
  std::string farm = "musafarm";
  // Value of the musafarm.agent label (the agent's name) on everything it
  // creates, so that a restarted agent removes its own leftovers and never
  // those of another agent on the same host; "" = no such label.
  std::string agent;
  // On cancel or timeout: how long after `docker kill` (run) or SIGTERM (build,
  // push) before the CLI's process group gets the next signal.
  absl::Duration kill_grace = absl::Seconds(5);
  // DOCKER_BUILDKIT=1 for docker_build instead of the legacy builder (=0).
  bool buildkit = false;
  // Bound on each helper command (kill, rm, cp, ps); it is SIGKILLed after this.
  absl::Duration helper_timeout = absl::Seconds(30);
  // GPU vendor of this host (GpuInventory::vendor): picks the variable that
  // names a docker_run attempt's GPUs (agent/task_env.h).
  std::string gpu_vendor;
  // Where docker_run secrets are written for their bind mounts
  // (agent/secret_files.h); "" = /dev/shm (a tmpfs) when writable.
  std::string secrets_dir;
  // Names this agent's secret directories (musafarm-<owner>-secrets-<attempt>)
  // so that a restarted agent removes its own leftovers and no other agent's
  // on the same host; "" = farm.
  std::string secrets_owner;
  // Removals that failed (`rm -f` of a container, the containers still
  // labelled with an interrupted attempt) are recorded here and retried by
  // RetryPendingRemovals() (issue 16, item 3); null: not recorded.
  PendingRemovals* pending_removals = nullptr;
  // Bound on Ping().
  absl::Duration ping_timeout = absl::Seconds(10);
  // Makes the content tree `tree` at the new directory `dir` (issue 17: a
  // docker_build whose context is a job input); the agent's is LocalCas over
  // its coordinator link. Called on the attempt's thread. Unset: such stages
  // fail saying this agent cannot fetch inputs.
  std::function<absl::Status(const v1::Digest& tree, const std::string& dir)> materialize_tree;
};

// "musafarm-<attempt>": the name of an attempt's docker_run container.
std::string DockerContainerName(uint64_t attempt_id);

// Runs docker_build, docker_run and docker_push stages through the engine's CLI
// (argv only, in the attempt's workdir, the agent's environment plus
// DOCKER_HOST). Every container and image it makes carries the labels
// musafarm.farm, musafarm.agent (when options.agent is set), musafarm.task and
// musafarm.attempt.
//
//   docker_build: build [--progress=plain] [--network=N] [--target=T] [--file=F] --label=...
//                 --build-arg=K=V... [--secret=id=<name lowercased>,env=NAME]... --tag=T...
//                 --force-rm CONTEXT   (DOCKER_BUILDKIT=0 unless options.buildkit or the
//                 stage has secrets, which need BuildKit and get --progress=plain);
//                 then, with push, `push TAG` per tag into the same log.
//   docker_run:   run --name=musafarm-<attempt> --label=... [--privileged] [--shm-size=S]
//                 [--device=D]... [--volume=SRC:DST[:ro]]... [--network=N] [--user=U]
//                 [--workdir=W] --init
//                 [--mount=type=bind,source=FILE,target=/run/secrets/<name lowercased>,readonly]...
//                 --env=K=V... IMAGE [COMMAND...]
//                 (--env in name order: ours, the stage's env, then the GPU variables of
//                 agent/task_env.h; secrets are files, agent/secret_files.h)
//                 then `cp musafarm-<attempt>:PATH WORKDIR/artifacts/NAME` per collect path
//                 (not after a cancel) and always `rm -f musafarm-<attempt>`.
//   docker_push:  `push IMAGE` per image, stopping at the first failure.
//
// Values go in --flag=value form so that no value (a device, a user) can be
// read as a flag; positional values (image, tag, context) must not start with '-'.
//
// Secrets (agent/task_env.h StageSecrets) never go in argv, which every user of
// the host can read in /proc. A build's CLI gets NAME=value in its own
// environment and argv holds only the name (BuildKit mounts it for the RUN steps
// that ask). A run gets files bind-mounted at /run/secrets/<name lowercased>
// from a private tmpfs directory: a container's environment would be kept by
// the daemon (its config, containerd's metadata database) on disk. Helper
// commands and pushes get none. Names the CLI reads itself (PATH, HOME,
// DOCKER_*, LD_*) are refused.
//
// Cancel and timeout: killing the CLI would leave a container running, so a run
// gets `kill musafarm-<attempt>` (retried every 500 ms while it fails, e.g.
// before the container exists), then SIGTERM to the CLI's group after
// kill_grace and SIGKILL one grace later. A build or push gets SIGTERM at once
// (the daemon cancels the build when its client goes; --force-rm removes the
// step's container), SIGKILL after kill_grace. After an interrupted run or
// build, containers still labelled with the attempt are removed.
//
// Helper commands (kill, rm, cp, ps) run synchronously on the attempt's thread
// with a bounded wait; their failures go into the task log. One thread per
// running attempt, as in ExecExecutor.
//
// Output backpressure (ExecCallbacks::wait_for_room) stops reading the CLI's
// pipe, so the CLI blocks; whether the container then blocks too depends on
// the engine's attach buffering.
class DockerExecutor final : public Executor {
 public:
  explicit DockerExecutor(DockerOptions options) : options_(std::move(options)) {}
  absl::StatusOr<std::unique_ptr<Execution>> Start(const v1::Assignment& assignment,
                                                   const std::string& workdir,
                                                   ExecCallbacks callbacks) override;

  // After an agent restart (nothing runs yet):
  //   ps -aq --filter=label=musafarm.farm=F --filter=label=musafarm.agent=A, then rm -f of those
  //   (only with options.agent set: without it no container is known to be this agent's);
  //   a recorded container not among them (made before the agent label existed) is removed
  //   when `container inspect` shows this farm's label and the attempt's id;
  //   a recorded image tag is removed (`image rm`, no force) when `image inspect` shows it
  //   still carries this agent's and the attempt's labels (an unfinished build or push).
  std::vector<std::string> RemoveLeftovers(const std::vector<AttemptTraces>& recorded) override;
  // docker_run: its container (DockerContainerName); docker_build: its tags.
  AttemptTraces Traces(const v1::Assignment& assignment) const override;

  // Whether the daemon answers: `version --format {{.Server.Version}}`,
  // bounded by options.ping_timeout; Unavailable with what the CLI said. An
  // attempt that failed also pings: when the daemon does not answer, its
  // ExitInfo.host_lost says so. Thread-safe.
  absl::Status Ping() const;
  // Runs the removals options.pending_removals holds (`rm -f NAME`; for an
  // attempt, ps by its labels and `rm -f`; `image rm REF`), dropping those
  // done or with nothing left to remove. Returns a line per removal, for the
  // log. Thread-safe.
  std::vector<std::string> RetryPendingRemovals();

 private:
  const DockerOptions options_;
};

}  // namespace musafarm::agent
