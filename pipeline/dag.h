#pragma once

// DAG construction: a parsed Pipeline into a Job, one task per (cell, stage)
// that runs there, `needs` resolved to task ids and each cell's tasks in a
// topological order (file order wherever the dependencies allow it).

#include <cstddef>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "musafarm/v1/farm.pb.h"
#include "pipeline/model.h"
#include "pipeline/spec.h"
#include "pipeline/substitute.h"

namespace musafarm::pipeline {

// A dependency edge: stage `stage` (index into Pipeline::stages) through needs[`item`].
struct Dep {
  size_t stage;
  size_t item;
  bool substituted;  // the name came from a ${var}, so the edge may depend on the cell
};

// The order of one cell's stages, or the cycle that prevents one.
struct StageOrder {
  std::vector<size_t> order;  // indices of the stages that run, dependencies first
  // When some stage could not be ordered: a dependency cycle, starting at its
  // first stage in the file and listing each stage once (a -> b -> a is {a, b}).
  std::vector<size_t> cycle;
};

// Kahn's algorithm over the stages with runs[s] set, whose dependencies are
// deps[s], taking the lowest stage index first.
StageOrder OrderStages(const std::vector<bool>& runs, const std::vector<std::vector<Dep>>& deps);

// Expands `p` into job `job_id` named `name`. Errors (unknown or self needs,
// a needed stage that does not run, cycles, a stage that runs nowhere, too
// many tasks, and those of each stage's substituted values) point into the file.
// A docker_build naming a declared input names its use in the cell
// (input_uses.h), each recorded once in *uses; `replaced`: the inputs a
// --context replaces (ExpandOptions::replaced_inputs).
absl::StatusOr<v1::Job> BuildJob(const Substituter& sub, const Pipeline& p,
                                 absl::string_view job_id, absl::string_view name,
                                 const std::vector<std::string>& replaced = {},
                                 std::vector<InputUse>* uses = nullptr);

}  // namespace musafarm::pipeline
