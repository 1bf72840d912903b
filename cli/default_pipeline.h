#pragma once

// pipelines/torch_musa.yaml, compiled into the CLI so that `musafarm submit`
// with torch_musa's script options works from any laptop without a checkout.

#include "absl/strings/string_view.h"

namespace musafarm::cli {

extern const absl::string_view kDefaultPipeline;
// How messages name it: "pipelines/torch_musa.yaml (built in)".
extern const char kDefaultPipelineFile[];

}  // namespace musafarm::cli
