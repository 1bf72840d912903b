#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm {

// The kind of a stage: which StageSpec.kind is set; UNSPECIFIED when none is.
v1::StageKind StageKindOf(const v1::StageSpec& run);

// The name of a stage kind as it travels in the old string fields
// (Capabilities.executors, Agent.executors) and in agent logs: "exec" (shell
// stages too), "docker_build", "docker_run", "docker_push"; "unknown" for
// UNSPECIFIED or a value this build does not know, which no agent runs.
std::string StageKindName(v1::StageKind kind);
std::string StageKindName(const v1::StageSpec& run);

// The kind a name stands for; UNSPECIFIED for a name this build does not know.
v1::StageKind StageKindFromName(absl::string_view name);

}  // namespace musafarm
