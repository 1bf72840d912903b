#pragma once

// The verdict on a stage's declared test suites (StageSpec.suites): whether
// each passed, judged from the files it left, and why not.
//
// torch_musa's run_tests.sh always exits 0 (the image build must go on when a
// suite fails) and writes each suite's exit status to a file. A task that only
// looked at the process's exit code and at pytest summaries would be green
// when a suite crashed before printing a summary, hung until `timeout`, or
// never wrote its output. The rule lives here, in one place, so that it is
// unit-tested on its own and the same for every pipeline:
//
//   a suite passes only when its exit-status file says 0 AND its JUnit report
//   (agent/junit_report.h) or, without a readable one, the pytest summary in
//   its output holds a test result with no failures or errors.
//
// Everything else fails it, with a reason that names the suite and says why.

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "agent/executor/executor.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::agent {

// A suite's files as the agent collected them (already redacted); nullopt
// when the file was not brought back (missing in the container).
struct SuiteFiles {
  std::optional<std::string> output;
  std::optional<std::string> exit_status;
  std::optional<std::string> junit;
};

struct SuiteVerdict {
  bool passed = false;
  std::string reason;     // "" when passed, else "suite NAME: why"
  v1::TestCounts counts;  // what its output said, if anything
  bool has_counts = false;
};

SuiteVerdict JudgeSuite(const v1::TestSuite& suite, const SuiteFiles& files);

// Judges each of `stage`'s suites from the files collected for it (matched
// by container path, CollectedFile::source). Reads at most the last MiB of
// a text output (pytest's summary is at the end) and kMaxJUnitBytes of a
// report.
std::vector<SuiteVerdict> JudgeSuites(const v1::StageSpec& stage,
                                      const std::vector<CollectedFile>& files);

// The suites' failure reasons joined with "; " ("" when all passed).
std::string SuiteFailure(const std::vector<SuiteVerdict>& verdicts);

// What an exit status means for a test suite, e.g. "exited 124 (timed out)",
// "exited 139 (killed by signal 11)", "exited 5 (pytest: no tests collected)".
std::string DescribeSuiteExit(int status);

}  // namespace musafarm::agent
