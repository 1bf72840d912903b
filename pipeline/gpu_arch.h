#pragma once

// A stage's `gpu_arch:` (docs/pipeline.md, "GPU architecture"): the MUSA GPU
// architecture its agent must have, usually from a matrix axis:
//
//   matrix: {arch: [any]}                 # --axis arch=qy2,ph1 (or --arch)
//   stages:
//     - name: test
//       gpu_arch: "${arch}"
//
// "any" or "" puts no constraint; any other value V becomes the label
// requirement musa_arch=V, which agents advertise from mthreads-gmi
// (agent/host/musa_arch.h) or from --label musa_arch=V. Labels are enough:
// the scheduler needs nothing new.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "musafarm/v1/farm.pb.h"
#include "pipeline/model.h"
#include "pipeline/substitute.h"

namespace musafarm::pipeline {

inline constexpr char kMusaArchLabel[] = "musa_arch";

// `st.gpu_arch` for one cell into a label of `run` (nothing for "any" or "").
absl::Status ExpandGpuArch(const Substituter& sub, const Stage& st, const std::vector<Var>& vars,
                           absl::string_view where, v1::StageSpec* run);

}  // namespace musafarm::pipeline
