#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace musafarm::e2e {

// The first sanitizer report in a child's output, from its first line to at most
// 40 lines on, or "" when there is none. The sanitizer build (build type Asan,
// scripts/asan-test.sh) stops a binary at its first report with a non-zero exit,
// which a test that expects a failure, or never waits, would not notice; the
// harness fails the test instead (Process, Farm::Cli). Recognised: AddressSanitizer
// and LeakSanitizer errors, UndefinedBehaviorSanitizer's "FILE:LINE:COL: runtime
// error:" lines and summary, ThreadSanitizer warnings.
std::string FindSanitizerReport(absl::string_view output);

}  // namespace musafarm::e2e
