#include "common/stage_kind.h"

namespace musafarm {

v1::StageKind StageKindOf(const v1::StageSpec& run) {
  switch (run.kind_case()) {
    case v1::StageSpec::kExec:
      return v1::STAGE_KIND_EXEC;
    case v1::StageSpec::kDockerBuild:
      return v1::STAGE_KIND_DOCKER_BUILD;
    case v1::StageSpec::kDockerRun:
      return v1::STAGE_KIND_DOCKER_RUN;
    case v1::StageSpec::kDockerPush:
      return v1::STAGE_KIND_DOCKER_PUSH;
    default:
      return v1::STAGE_KIND_UNSPECIFIED;
  }
}

std::string StageKindName(v1::StageKind kind) {
  switch (kind) {
    case v1::STAGE_KIND_EXEC:
      return "exec";
    case v1::STAGE_KIND_DOCKER_BUILD:
      return "docker_build";
    case v1::STAGE_KIND_DOCKER_RUN:
      return "docker_run";
    case v1::STAGE_KIND_DOCKER_PUSH:
      return "docker_push";
    default:
      return "unknown";
  }
}

std::string StageKindName(const v1::StageSpec& run) { return StageKindName(StageKindOf(run)); }

v1::StageKind StageKindFromName(absl::string_view name) {
  for (v1::StageKind kind : {v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_BUILD,
                             v1::STAGE_KIND_DOCKER_RUN, v1::STAGE_KIND_DOCKER_PUSH}) {
    if (name == StageKindName(kind)) return kind;
  }
  return v1::STAGE_KIND_UNSPECIFIED;
}

}  // namespace musafarm
