#include "common/format_bytes.h"

#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace musafarm {

std::string FormatBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes) / 1024;
  size_t unit = 0;
  while (v >= 1024 && unit + 1 < std::size(kUnits)) {
    v /= 1024;
    ++unit;
  }
  std::string n = v < 10 ? absl::StrFormat("%.1f", v) : absl::StrFormat("%.0f", v);
  if (absl::EndsWith(n, ".0")) n.resize(n.size() - 2);
  return absl::StrCat(n, " ", kUnits[unit]);
}

}  // namespace musafarm
