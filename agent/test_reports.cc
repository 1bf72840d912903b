#include "agent/test_reports.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <set>

#include "absl/strings/str_cat.h"
#include "agent/junit_report.h"
#include "agent/pytest_summary.h"
#include "common/utf8.h"

namespace musafarm::agent {
namespace {

int32_t SaturatingAdd(int32_t a, int32_t b) {
  return static_cast<int32_t>(
      std::min<int64_t>(int64_t{a} + b, std::numeric_limits<int32_t>::max()));
}

// Adds `more` to `into`: counts add up, ids join; failed wins over passed.
void Merge(const v1::TestCounts& more, v1::TestCounts* into) {
  into->set_passed(SaturatingAdd(into->passed(), more.passed()));
  into->set_failed(SaturatingAdd(into->failed(), more.failed()));
  into->set_skipped(SaturatingAdd(into->skipped(), more.skipped()));
  into->set_errors(SaturatingAdd(into->errors(), more.errors()));
  std::set<std::string> failed(into->failed_tests().begin(), into->failed_tests().end());
  failed.insert(more.failed_tests().begin(), more.failed_tests().end());
  std::set<std::string> passed(into->passed_tests().begin(), into->passed_tests().end());
  passed.insert(more.passed_tests().begin(), more.passed_tests().end());
  into->clear_failed_tests();
  for (const std::string& id : failed) into->add_failed_tests(id);
  into->clear_passed_tests();
  for (const std::string& id : passed) {
    if (failed.count(id) == 0) into->add_passed_tests(id);
  }
}

}  // namespace

std::string TestReports::Add(absl::string_view name, absl::string_view text) {
  if (LooksLikeJUnitXml(text)) {
    absl::StatusOr<v1::TestCounts> counts = ParseJUnitXml(text);
    if (!counts.ok()) {
      return absl::StrCat("musafarm-agent: test report ", CoerceUtf8(name),
                          " not read: ", counts.status().message());
    }
    Merge(*counts, &junit_);
    any_junit_ = true;
    return "";
  }
  any_text_ = ParsePytestOutput(text, &text_) || any_text_;
  return "";
}

std::optional<v1::TestCounts> TestReports::Result() const {
  if (any_junit_) return junit_;
  if (any_text_) return text_;
  return std::nullopt;
}

}  // namespace musafarm::agent
