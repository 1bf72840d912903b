#pragma once

// The pipeline's `inputs:` section (issue 17, item 1): the source trees a
// job is submitted with by default, and the check that a stage's
// `context: input:NAME` names one of them.

#include <string>

#include "absl/status/status.h"
#include "pipeline/model.h"
#include "pipeline/yaml_reader.h"

namespace musafarm::pipeline {

// Reads `inputs: {NAME: {path: DIR, ignore: FILE}}` into p->inputs. Errors
// name the file, the input and what is wrong: a bad name, a missing or
// absolute path, an ignore file outside the input, an unknown field.
absl::Status ParseInputs(const YamlReader& r, const Entry& e, Pipeline* p);

// For a docker_build whose context names input `name`: OK when the pipeline
// declares no inputs (the submitter's --context must then supply it, which
// the coordinator checks) or declares this one; else an error at `context`
// listing the declared inputs.
absl::Status CheckInputReference(const YamlReader& r, const Pipeline& p, const Text& context,
                                 const std::string& name, absl::string_view where);

}  // namespace musafarm::pipeline
