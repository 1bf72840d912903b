#include "common/stage_kind.h"

namespace musafarm {

std::string StageKindName(const v1::StageSpec& run) {
  switch (run.kind_case()) {
    case v1::StageSpec::kExec:
      return "exec";
    case v1::StageSpec::kDockerBuild:
      return "docker_build";
    case v1::StageSpec::kDockerRun:
      return "docker_run";
    case v1::StageSpec::kDockerPush:
      return "docker_push";
    default:
      return "unknown";
  }
}

}  // namespace musafarm
