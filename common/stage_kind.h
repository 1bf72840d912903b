#pragma once

#include <string>

#include "musafarm/v1/farm.pb.h"

namespace musafarm {

// The name of a stage's kind as agents advertise it in
// Capabilities.executors and the scheduler matches it: "exec" (shell stages
// too), "docker_build", "docker_run", "docker_push"; "unknown" when no kind is
// set, which no agent runs.
std::string StageKindName(const v1::StageSpec& run);

}  // namespace musafarm
