#pragma once

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::agent {

// The test results of one attempt, from the files it collected (issue 16,
// item 7): JUnit XML reports (agent/junit_report.h) and pytest's text output
// (agent/pytest_summary.h). Not thread-safe.
class TestReports {
 public:
  // Reads one collected file. A file that starts like a JUnit report is read
  // as one; any other as pytest output. Returns a line for the task's log
  // when a report could not be read (it then counts for nothing), else "".
  std::string Add(absl::string_view name, absl::string_view text);

  // The attempt's counts, nullopt when no file held any. When both JUnit
  // reports and text summaries were found, the reports win, whole (counts and
  // ids): they list every test exactly, while a text summary may be cut short
  // or also count runs the reports do not cover. Several reports (or several
  // summaries) add up; a test failed in one is not listed as passed.
  std::optional<v1::TestCounts> Result() const;

 private:
  v1::TestCounts junit_;
  bool any_junit_ = false;
  v1::TestCounts text_;
  bool any_text_ = false;
};

}  // namespace musafarm::agent
