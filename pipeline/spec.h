#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/limits.h"
#include "musafarm/v1/farm.pb.h"
#include "pipeline/option_decl.h"

namespace musafarm::pipeline {

// Parses a pipeline YAML file and expands its matrix into a job: one task per
// (matrix cell, stage) with its dependencies resolved to task ids.
//
// `file` names the source in error messages. Every error is InvalidArgument
// with a message "FILE:LINE:COL: FIELD: what is wrong", e.g.
//   pipelines/x.yaml:12:5: stages[1].needs[0]: unknown stage 'dve' (stages are: base, dev, test)
// and nothing partial is returned.
//
// On success the job has id `job_id`, its name (the `name` field, or `name_override`
// when non-empty), the matrix axes in order, and its tasks in a topological order
// (stable: cells in matrix order, then stages in file order). Every task is
// TASK_STATE_PENDING with id "<job_id>/<cell>/<stage>", where <cell> is the
// cell's axis values joined by '-' ("dev-3.8"), or just "<job_id>/<stage>" when the
// pipeline has no matrix. docs/pipeline.md describes the format.
absl::StatusOr<v1::Job> ParseAndExpand(absl::string_view yaml, absl::string_view file,
                                       absl::string_view job_id,
                                       absl::string_view name_override = "");

// What a submitter sets on top of the file (`musafarm submit --param`, `--axis`,
// `--secret` and the options the pipeline declares, which map onto them).
struct ExpandOptions {
  std::string name_override;
  // Values for params the pipeline declares under `params`; an undeclared name is
  // an error that lists the declared ones.
  std::map<std::string, std::string> params;
  // (axis, values) pairs: the axis takes these values instead of the file's.
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  // Names of the secrets the submitter supplies (values never reach the parser);
  // each must be declared under `secrets`.
  std::vector<std::string> secrets;
  // GPUs one stage may ask for: the coordinator's --max-gpus-per-stage. The
  // CLI, which does not know it, checks against what any agent could declare.
  int max_gpus_per_stage = limits::kDefaultMaxGpusPerStage;
  // Declared inputs that `--context NAME=...` replaces: one tree for every
  // cell, whatever per-cell values their git ref would have (input_uses.h).
  std::vector<std::string> replaced_inputs;
};

// A declared input as the job's tasks use it (pipeline/input_uses.h): under
// `name`, "NAME" or "NAME@AXIS=VALUE..." where a cell builds another git ref
// or URL than the job-wide one; each docker_build's context_input names one.
struct InputUse {
  std::string name;
  std::string declared;  // the declared input's name
  std::string git;       // a git input's URL and ref with the cell's params
  std::string ref;
  // A join's (SUB, use name) parts, "." for the top directory.
  std::vector<std::pair<std::string, std::string>> join;
};

absl::StatusOr<v1::Job> ParseAndExpand(absl::string_view yaml, absl::string_view file,
                                       absl::string_view job_id, const ExpandOptions& options);
// The same, with the uses of declared inputs the job's tasks name in *uses
// (a join's parts before it, in the order first named).
absl::StatusOr<v1::Job> ParseAndExpand(absl::string_view yaml, absl::string_view file,
                                       absl::string_view job_id, const ExpandOptions& options,
                                       std::vector<InputUse>* uses);

// The command-line options the pipeline declares under `options:` and its
// matrix axes, for `musafarm submit`. Reads and checks the file as
// ParseAndExpand does, up to expansion: the same errors for the same file.
absl::StatusOr<PipelineOptions> DeclaredOptions(absl::string_view yaml, absl::string_view file);

}  // namespace musafarm::pipeline
