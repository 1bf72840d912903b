#pragma once

// Stage parsing: one entry of `stages` into a Stage (name, when, needs, kind
// and its fields, env, timeout, retries, secrets, gpus), and, per cell, the
// checks that need a stage's substituted values (paths, sizes, emptiness).

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "musafarm/v1/farm.pb.h"
#include "pipeline/matrix.h"
#include "pipeline/model.h"
#include "pipeline/substitute.h"
#include "pipeline/yaml_reader.h"

namespace musafarm::pipeline {

class StageParser {
 public:
  explicit StageParser(const YamlReader& r) : r_(r) {}

  // stages[`index`]; `p` gives the axes, params and secrets it may refer to.
  absl::Status ParseStage(const YAML::Node& node, const YAML::Mark& fallback, size_t index,
                          const Pipeline& p, Stage* s) const;
  // An `env` or `build_args` mapping; `what` names the keys in errors:
  // "environment variable", "build argument".
  absl::Status ParseEnv(const Entry& e, absl::string_view what, std::vector<EnvVar>* out) const;

 private:
  absl::Status ParseNeeds(const Entry& e, Stage* s) const;
  absl::Status ParseStageSecrets(const Entry& e, const Pipeline& p, Stage* s) const;
  absl::Status ParseGpus(const Entry& e, Stage* s) const;
  absl::Status ParseWhen(const Entry& e, const Pipeline& p, Stage* s) const;
  absl::Status ParseTimeout(const Entry& e, int64_t* out) const;
  absl::Status ParseDockerBuild(const Entry& e, DockerBuild* out) const;
  absl::Status ParseDockerRun(const Entry& e, DockerRun* out) const;
  absl::Status ParseDockerPush(const Entry& e, const Pipeline& p, DockerPush* out) const;

  const YamlReader& r_;
};

// Fills `run`'s `kind` oneof for one cell. Checks that need the final value
// run here, after substitution, so a variable cannot smuggle in a relative
// path or an empty image.
absl::Status ExpandStageRun(const Substituter& sub, const Stage& st, const std::vector<Var>& vars,
                            absl::string_view where, v1::StageSpec* run);

// A GPU count as written or substituted: decimal digits only (no sign, no
// spaces), within int32.
bool ParseGpuCount(absl::string_view text, int32_t* out);
std::string GpuCountError(absl::string_view text);

// A docker_build `context: input:NAME` names the job input NAME (issue 17).
inline constexpr absl::string_view kContextInputPrefix = "input:";
// An input's name (`--context NAME=...`): 1 to 64 of [A-Za-z0-9_.-], starting
// with a letter or digit. INVALID_ARGUMENT saying so otherwise.
absl::Status ValidateInputName(absl::string_view name);

}  // namespace musafarm::pipeline
