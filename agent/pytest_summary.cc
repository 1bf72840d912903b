#include "agent/pytest_summary.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/utf8.h"

namespace musafarm::agent {
namespace {

// a + b for counts (both >= 0), at most INT32_MAX: a garbled or hostile output
// ("2147483647 passed, 1 passed") must not overflow (found by tests/fuzz).
int32_t SaturatingAdd(int32_t a, int32_t b) {
  return static_cast<int32_t>(
      std::min<int64_t>(int64_t{a} + b, std::numeric_limits<int32_t>::max()));
}

// "2 failed, 10 passed, 1 skipped, 1 error in 3.2s" -> counts. Returns false
// when the words are not pytest's.
bool ParseSummaryBody(absl::string_view body, v1::TestCounts* out) {
  const size_t in = body.rfind(" in ");
  if (in == absl::string_view::npos) return false;
  body = body.substr(0, in);
  v1::TestCounts c;
  bool any = false;
  for (absl::string_view part : absl::StrSplit(body, ',')) {
    part = absl::StripAsciiWhitespace(part);
    std::vector<absl::string_view> words = absl::StrSplit(part, ' ', absl::SkipEmpty());
    if (words.size() != 2) return false;
    int n = 0;
    if (!absl::SimpleAtoi(words[0], &n) || n < 0) return false;
    const absl::string_view what = words[1];
    if (what == "passed") {
      c.set_passed(SaturatingAdd(c.passed(), n));
    } else if (what == "failed") {
      c.set_failed(SaturatingAdd(c.failed(), n));
    } else if (what == "skipped") {
      c.set_skipped(SaturatingAdd(c.skipped(), n));
    } else if (what == "error" || what == "errors") {
      c.set_errors(SaturatingAdd(c.errors(), n));
    } else if (what == "xfailed" || what == "xpassed" || what == "warning" ||
               what == "warnings" || what == "deselected" || what == "rerun") {
      // Not a pass or a failure of the suite.
    } else {
      return false;
    }
    any = true;
  }
  if (!any) return false;
  out->set_passed(SaturatingAdd(out->passed(), c.passed()));
  out->set_failed(SaturatingAdd(out->failed(), c.failed()));
  out->set_skipped(SaturatingAdd(out->skipped(), c.skipped()));
  out->set_errors(SaturatingAdd(out->errors(), c.errors()));
  return true;
}

// A pytest node id: path::name, with no spaces.
bool IsNodeId(absl::string_view s) {
  return absl::StrContains(s, "::") && !absl::StrContains(s, " ");
}

}  // namespace

bool ParsePytestOutput(absl::string_view text, v1::TestCounts* counts) {
  bool found = false;
  std::set<std::string> failed(counts->failed_tests().begin(), counts->failed_tests().end());
  std::set<std::string> passed(counts->passed_tests().begin(), counts->passed_tests().end());
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    line = absl::StripTrailingAsciiWhitespace(line);
    // "==== 1 failed, 2 passed in 0.12s ====" (colour codes removed by -p no:... or absent)
    if (absl::StartsWith(line, "=") && absl::EndsWith(line, "=")) {
      const size_t first = line.find_first_not_of('=');
      const size_t last = line.find_last_not_of('=');
      if (first != absl::string_view::npos) {
        absl::string_view body = absl::StripAsciiWhitespace(line.substr(first, last - first + 1));
        found = ParseSummaryBody(body, counts) || found;
      }
      continue;
    }
    for (absl::string_view prefix : {"FAILED ", "ERROR "}) {
      if (absl::StartsWith(line, prefix)) {
        absl::string_view rest = line.substr(prefix.size());
        absl::string_view id = rest.substr(0, rest.find(' '));
        if (IsNodeId(id)) failed.insert(CoerceUtf8(id));
      }
    }
    // Verbose: "tests/x.py::test_y PASSED    [ 10%]"
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    if (words.size() >= 2 && IsNodeId(words[0])) {
      // Node ids become proto strings, which must be UTF-8 (a test may be named
      // in any bytes).
      if (words[1] == "PASSED") passed.insert(CoerceUtf8(words[0]));
      if (words[1] == "FAILED" || words[1] == "ERROR") failed.insert(CoerceUtf8(words[0]));
    }
  }
  counts->clear_failed_tests();
  for (const std::string& id : failed) counts->add_failed_tests(id);
  counts->clear_passed_tests();
  for (const std::string& id : passed) {
    if (failed.count(id) == 0) counts->add_passed_tests(id);
  }
  return found;
}

}  // namespace musafarm::agent
