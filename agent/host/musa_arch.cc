#include "agent/host/musa_arch.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace musafarm::agent {

std::string MusaArchOfModel(const std::string& model) {
  std::string key;
  for (char c : model) {
    if (!absl::ascii_isspace(static_cast<unsigned char>(c)) && c != '_') {
      key += absl::ascii_toupper(static_cast<unsigned char>(c));
    }
  }
  // The table of upstream's docker/build_dev.sh, except that a model it does
  // not list is not taken to be ph1: a wrong guess would fetch the wrong
  // toolkit, a missing label only keeps arch-specific cells away.
  if (key == "MTTS80" || key == "MTTS80ES" || key == "MTTS3000") return "qy1";
  if (key == "MTTS4000") return "qy2";
  if (key == "MTTS5000") return "ph1";
  return "";
}

std::vector<std::string> MusaArchLabels(const GpuInventory& inv) {
  if (inv.vendor != "mthreads" || inv.count <= 0 || inv.models.empty()) return {};
  std::set<std::string> archs;
  for (const std::string& m : inv.models) archs.insert(MusaArchOfModel(m));
  if (archs.size() != 1 || archs.begin()->empty()) return {};
  return {absl::StrCat("musa_arch=", *archs.begin())};
}

}  // namespace musafarm::agent
