#include "pipeline/gpu_arch.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace musafarm::pipeline {

absl::Status ExpandGpuArch(const Substituter& sub, const Stage& st, const std::vector<Var>& vars,
                           absl::string_view where, v1::StageSpec* run) {
  if (!st.has_gpu_arch) return absl::OkStatus();
  MF_ASSIGN_OR_RETURN(std::string arch, sub.Substitute(st.gpu_arch, vars, where));
  if (arch.empty() || arch == "any") return absl::OkStatus();
  const bool valid = std::all_of(arch.begin(), arch.end(), [](char c) {
    return absl::ascii_islower(static_cast<unsigned char>(c)) ||
           absl::ascii_isdigit(static_cast<unsigned char>(c));
  });
  if (!valid || arch.size() > 32) {
    return sub.Invalid(st.gpu_arch, where,
                       absl::StrCat("GPU architecture '", arch,
                                    "' must be 'any' or 1 to 32 lower-case letters and digits "
                                    "(qy1, qy2, ph1)"));
  }
  const std::string label = absl::StrCat(kMusaArchLabel, "=", arch);
  const auto& labels = run->labels();
  if (std::find(labels.begin(), labels.end(), label) == labels.end()) run->add_labels(label);
  return absl::OkStatus();
}

}  // namespace musafarm::pipeline
