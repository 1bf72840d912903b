#pragma once

// A stage's `suites:` (docs/pipeline.md, "Test suites"): the test suites a
// docker_run stage runs and the files each leaves in the container. The agent
// judges them (agent/suite_verdict.h); here they are read and, per cell,
// substituted and added to what the stage collects.
//
//   suites:
//     - name: unit
//       output: /home/ut_output.txt
//       exit_status: /home/ut_exit_code.txt
//       junit: /home/ut_junit.xml          # optional

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "musafarm/v1/farm.pb.h"
#include "pipeline/model.h"
#include "pipeline/substitute.h"
#include "pipeline/yaml_reader.h"

namespace musafarm::pipeline {

// A stage's `suites` entry `e` into `out`.
absl::Status ParseSuites(const YamlReader& r, const Entry& e, std::vector<Suite>* out);

// `st`'s suites for one cell into `run->suites`, their files added to the
// docker_run stage's `collect` (once each). A path must be absolute once
// substituted.
absl::Status ExpandSuites(const Substituter& sub, const Stage& st, const std::vector<Var>& vars,
                          absl::string_view where, v1::StageSpec* run);

}  // namespace musafarm::pipeline
