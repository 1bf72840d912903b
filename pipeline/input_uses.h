#pragma once

// Which tree of a declared input each cell builds (issues 17 and 18). A git
// input's URL and ref may use params, and a param may have per-cell values
// (cell_values.h: `torch_musa_tag@recipe=v2.0.1: v2.0.1`), so cells of one
// job may build different refs of one repository. Each cell's docker_build
// then names the input's *use* in that cell:
//
//   NAME                      where the cell's URL and ref are the job-wide ones
//   NAME@AXIS=VALUE[@...]     where they differ: the per-cell values that made
//                             them differ, in axis order (torch_musa@recipe=v2.0.1)
//
// and a join holding such a part is used under the same suffix
// (context@recipe=v2.0.1 = join of dockerfiles and torch_musa@recipe=v2.0.1).
// The submitter sends each use the job's tasks name, and no other declared
// input, so a git input only some cells build is resolved only when they run,
// each distinct (URL, ref) once (coordinator/git_inputs.h).

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pipeline/model.h"
#include "pipeline/spec.h"
#include "pipeline/yaml_reader.h"

namespace musafarm::pipeline {

// The name of declared input `name`'s use in `cell`, recorded in *uses (once
// per name; a join's parts before the join). `replaced`: inputs a
// `--context` replaces, which are one tree for every cell. Errors: a git
// URL or ref naming something other than a param (at the input), and per-cell
// values by two axes meeting in the cell (cell_values.h).
absl::StatusOr<std::string> UseInput(const YamlReader& r, const Pipeline& p, const Cell& cell,
                                     const std::string& name, absl::string_view where,
                                     const std::vector<std::string>& replaced,
                                     std::vector<InputUse>* uses);

// `text` with each `${NAME}` replaced by params[NAME]; an error naming
// `where`.`field` for an unknown name or an unclosed reference.
absl::StatusOr<std::string> SubstituteInputParams(
    const std::string& text, const std::vector<std::pair<std::string, std::string>>& params,
    absl::string_view where, absl::string_view field);

// A use's name as a submission carries it: a declared input's name
// (ValidateInputName), then any number of "@AXIS=VALUE" (an axis name, a
// matrix value); at most 256 bytes. INVALID_ARGUMENT saying which part is wrong.
absl::Status ValidateInputUseName(absl::string_view name);

// "torch_musa@recipe=v2.0.1" -> "torch_musa".
absl::string_view DeclaredInputName(absl::string_view use);

}  // namespace musafarm::pipeline
