#pragma once

// The MUSA GPU architecture of a host, as torch_musa's build scripts name it:
// qy1 (MTT S80, S80ES, S3000), qy2 (MTT S4000), ph1 (MTT S5000). Upstream's
// build_dev.sh picks its toolkit, muDNN and MCCL packages by it; the farm
// advertises it as the label musa_arch=<arch>, which a stage's `gpu_arch:`
// requires (docs/pipeline.md), so a cell of an `arch` axis runs on agents of
// that architecture only.

#include <string>
#include <vector>

#include "agent/host/gpu.h"

namespace musafarm::agent {

// "qy1", "qy2", "ph1" for a Moore Threads model name as mthreads-gmi prints it
// ("MTT S4000"; blanks and case do not matter); "" for a model not known here.
std::string MusaArchOfModel(const std::string& model);

// {"musa_arch=<arch>"} when `inv` is Moore Threads GPUs of one known
// architecture; empty otherwise (no GPU, another vendor, no model names, an
// unknown model, or a mix): the operator then says it with
// --label musa_arch=<arch>.
std::vector<std::string> MusaArchLabels(const GpuInventory& inv);

}  // namespace musafarm::agent
