#include "tests/e2e/sanitizer_report.h"

#include <algorithm>
#include <cctype>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace musafarm::e2e {
namespace {

constexpr absl::string_view kMarkers[] = {
    "ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "ERROR: UndefinedBehaviorSanitizer",
    "SUMMARY: UndefinedBehaviorSanitizer", "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer",
};
constexpr absl::string_view kRuntimeError = ": runtime error: ";
constexpr int kReportLines = 40;

// UBSan's "path:LINE:COL: runtime error: ..." (or "<unknown>: runtime error:"),
// not any line that happens to say "runtime error" (a task's own output).
bool IsUbsanLine(absl::string_view line) {
  const size_t at = line.find(kRuntimeError);
  if (at == absl::string_view::npos) return false;
  absl::string_view where = line.substr(0, at);
  if (absl::EndsWith(where, "<unknown>")) return true;
  for (int field = 0; field < 2; ++field) {  // COL, then LINE
    size_t digits = 0;
    while (digits < where.size() &&
           std::isdigit(static_cast<unsigned char>(where[where.size() - 1 - digits]))) {
      ++digits;
    }
    if (digits == 0) return false;
    where.remove_suffix(digits);
    if (field == 0 && !absl::ConsumeSuffix(&where, ":")) return false;
  }
  return true;
}

bool IsReportLine(absl::string_view line) {
  return IsUbsanLine(line) || std::any_of(std::begin(kMarkers), std::end(kMarkers),
                                          [&](absl::string_view m) {
                                            return line.find(m) != absl::string_view::npos;
                                          });
}

}  // namespace

std::string FindSanitizerReport(absl::string_view output) {
  std::string report;
  int taken = 0;  // lines of the report so far
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (taken == 0 && !IsReportLine(line)) continue;
    absl::StrAppend(&report, line, "\n");
    if (++taken == kReportLines) break;
  }
  return report;
}

}  // namespace musafarm::e2e
