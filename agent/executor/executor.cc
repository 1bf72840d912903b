#include "agent/executor/executor.h"

#include <sys/wait.h>

#include <cerrno>

#include "common/stage_kind.h"

namespace musafarm::agent {
namespace {
constexpr absl::Duration kRoomPoll = absl::Milliseconds(50);
}  // namespace

void AwaitOutputRoom(ExecCallbacks& cb, const std::function<void()>& tick,
                     const std::function<bool()>& stop_waiting) {
  if (!cb.wait_for_room) return;
  // Neither condition can change without `tick` (stopping) or the caller
  // (reaping), so checking before each wait is enough.
  while (!stop_waiting()) {
    if (cb.wait_for_room(kRoomPoll)) return;
    tick();
  }
}

std::vector<std::string> StageImages(const v1::StageSpec& stage) {
  switch (stage.kind_case()) {
    case v1::StageSpec::kDockerBuild:
      return {stage.docker_build().tags().begin(), stage.docker_build().tags().end()};
    case v1::StageSpec::kDockerRun:
      return {stage.docker_run().image()};
    case v1::StageSpec::kDockerPush:
      return {stage.docker_push().images().begin(), stage.docker_push().images().end()};
    default:
      return {};
  }
}

AttemptTraces Executor::Traces(const v1::Assignment& assignment) const {
  AttemptTraces t;
  t.task_id = assignment.task_id();
  t.attempt_id = assignment.attempt_id();
  t.kind = StageKindName(assignment.run());
  return t;
}

bool ChildReaped(pid_t pid) {
  siginfo_t info = {};
  // WNOWAIT: look without reaping. ECHILD: no such child any more.
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 &&
         errno == ECHILD;
}

}  // namespace musafarm::agent
