#include "agent/host/disk.h"

#include <sys/statvfs.h>

#include <cerrno>
#include <cmath>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/format_bytes.h"

namespace musafarm::agent {

absl::StatusOr<uint64_t> ParseBytes(absl::string_view text) {
  const std::string s = absl::AsciiStrToLower(absl::StripAsciiWhitespace(text));
  auto bad = [&] {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", text, "' is not a size (bytes, or a number with K, M, G, T or P, e.g. 5G)"));
  };
  size_t end = 0;
  while (end < s.size() && (absl::ascii_isdigit(s[end]) || s[end] == '.')) ++end;
  const std::string number = s.substr(0, end);
  std::string unit = s.substr(end);
  if (number.empty()) return bad();
  if (!unit.empty() && unit.back() == 'b') unit.pop_back();
  if (!unit.empty() && unit.back() == 'i') unit.pop_back();
  int shift = 0;
  if (unit.empty()) {
    shift = 0;
  } else if (unit == "k") {
    shift = 10;
  } else if (unit == "m") {
    shift = 20;
  } else if (unit == "g") {
    shift = 30;
  } else if (unit == "t") {
    shift = 40;
  } else if (unit == "p") {
    shift = 50;
  } else {
    return bad();
  }
  if (number.find('.') == std::string::npos) {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(number, &n)) return bad();
    if (n > (uint64_t{1} << (63 - shift))) return bad();
    return n << shift;
  }
  if (shift == 0) return bad();  // no fractions of a byte
  double d = 0;
  if (!absl::SimpleAtod(number, &d) || !std::isfinite(d) || d < 0) return bad();
  const double bytes = std::ldexp(d, shift);
  if (bytes > std::ldexp(1.0, 63)) return bad();
  return static_cast<uint64_t>(bytes);
}

absl::StatusOr<uint64_t> FreeDiskBytes(const std::string& dir) {
  struct statvfs st;
  if (::statvfs(dir.c_str(), &st) != 0) {
    return absl::InternalError(absl::StrCat("statvfs ", dir, ": ", std::strerror(errno)));
  }
  return static_cast<uint64_t>(st.f_bavail) * static_cast<uint64_t>(st.f_frsize);
}

std::string LowDiskReason(uint64_t free, uint64_t min_free, const std::string& dir) {
  if (min_free == 0 || free >= min_free) return "";
  return absl::StrCat("low disk: ", FormatBytes(free), " free in ", dir, ", below ",
                      FormatBytes(min_free));
}

}  // namespace musafarm::agent
