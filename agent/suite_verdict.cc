#include "agent/suite_verdict.h"

#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/junit_report.h"
#include "agent/pytest_summary.h"
#include "common/utf8.h"

namespace musafarm::agent {
namespace {

// pytest's own exit codes (pytest.ExitCode) and the ones `timeout` uses.
const char* ExitMeaning(int status) {
  switch (status) {
    case 1:
      return "pytest: tests failed";
    case 2:
      return "pytest: interrupted";
    case 3:
      return "pytest: internal error";
    case 4:
      return "pytest: usage error";
    case 5:
      return "pytest: no tests collected";
    case 124:
      return "timed out";
    case 137:
      return "killed after timing out";
    default:
      return nullptr;
  }
}

std::string Summary(const v1::TestCounts& c) {
  std::vector<std::string> parts;
  if (c.failed() > 0) parts.push_back(absl::StrCat(c.failed(), " failed"));
  if (c.errors() > 0) parts.push_back(absl::StrCat(c.errors(), " errors"));
  parts.push_back(absl::StrCat(c.passed(), " passed"));
  if (c.skipped() > 0) parts.push_back(absl::StrCat(c.skipped(), " skipped"));
  return absl::StrJoin(parts, ", ");
}

// A quoted excerpt of a file that should have held a number: bounded and
// valid UTF-8, since it goes into a task's reason.
std::string Excerpt(absl::string_view text) {
  constexpr size_t kMax = 40;
  std::string out = CoerceUtf8(text.substr(0, kMax));
  if (text.size() > kMax) out += "...";
  return out;
}

constexpr std::streamoff kMaxRead = 1 << 20;

// The text of the collected file that came from `source`, or nullopt; at most
// its last `max` bytes.
std::optional<std::string> Collected(const std::vector<CollectedFile>& files,
                                     const std::string& source,
                                     std::streamoff max = kMaxRead) {
  if (source.empty()) return std::nullopt;
  for (const CollectedFile& f : files) {
    if (f.source != source) continue;
    std::ifstream in(f.host_path, std::ios::binary | std::ios::ate);
    if (!in) return std::nullopt;
    const std::streamoff size = in.tellg();
    in.seekg(size > max ? size - max : 0);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
  return std::nullopt;
}

}  // namespace

std::vector<SuiteVerdict> JudgeSuites(const v1::StageSpec& stage,
                                      const std::vector<CollectedFile>& files) {
  std::vector<SuiteVerdict> verdicts;
  for (const v1::TestSuite& suite : stage.suites()) {
    SuiteFiles f;
    f.output = Collected(files, suite.output());
    f.exit_status = Collected(files, suite.exit_status());
    f.junit = Collected(files, suite.junit(), static_cast<std::streamoff>(kMaxJUnitBytes));
    verdicts.push_back(JudgeSuite(suite, f));
  }
  return verdicts;
}

std::string DescribeSuiteExit(int status) {
  if (const char* meaning = ExitMeaning(status)) {
    return absl::StrCat("exited ", status, " (", meaning, ")");
  }
  if (status > 128 && status < 128 + 65) {
    return absl::StrCat("exited ", status, " (killed by signal ", status - 128, ")");
  }
  return absl::StrCat("exited ", status);
}

SuiteVerdict JudgeSuite(const v1::TestSuite& suite, const SuiteFiles& files) {
  SuiteVerdict v;
  auto fail = [&](absl::string_view why) {
    v.passed = false;
    v.reason = absl::StrCat("suite ", suite.name(), ": ", why);
    return v;
  };
  // The JUnit report when it is one (exact, as agent/test_reports.h prefers
  // it), else the pytest summary in the text output.
  if (files.junit.has_value() && LooksLikeJUnitXml(*files.junit)) {
    absl::StatusOr<v1::TestCounts> junit = ParseJUnitXml(*files.junit);
    if (junit.ok()) {
      v.counts = *std::move(junit);
      v.has_counts = true;
    }
  }
  if (!v.has_counts && files.output.has_value()) {
    v.has_counts = ParsePytestOutput(*files.output, &v.counts);
  }
  if (!files.exit_status.has_value()) {
    return fail(absl::StrCat("no exit status: ", suite.exit_status(),
                             " was not written (did the suite start?)"));
  }
  const std::string status_text(absl::StripAsciiWhitespace(*files.exit_status));
  int status = 0;
  if (status_text == "skipped") {
    return fail("was not run (RUN_TESTS is not 1 in the container)");
  }
  if (status_text == "missing") {
    return fail("the checkout has no such suite (exit status file says 'missing')");
  }
  if (!absl::SimpleAtoi(status_text, &status)) {
    return fail(absl::StrCat(suite.exit_status(), " holds '", Excerpt(status_text),
                             "', not an exit status"));
  }
  if (!files.output.has_value()) {
    return fail(absl::StrCat(DescribeSuiteExit(status), " and its output ", suite.output(),
                             " is missing"));
  }
  const int failing = v.counts.failed() + v.counts.errors();
  if (status != 0) {
    if (!v.has_counts) {
      return fail(absl::StrCat(DescribeSuiteExit(status), " before printing a test summary"));
    }
    if (failing == 0) {
      return fail(absl::StrCat(DescribeSuiteExit(status), " although its summary says ",
                               Summary(v.counts)));
    }
    return fail(absl::StrCat(Summary(v.counts), " (", DescribeSuiteExit(status), ")"));
  }
  if (!v.has_counts) {
    return fail(absl::StrCat("exited 0 but ", suite.output(), " holds no test summary"));
  }
  if (failing > 0) {
    return fail(absl::StrCat(Summary(v.counts), " although it exited 0"));
  }
  v.passed = true;
  return v;
}

std::string SuiteFailure(const std::vector<SuiteVerdict>& verdicts) {
  std::vector<absl::string_view> reasons;
  for (const SuiteVerdict& v : verdicts) {
    if (!v.passed) reasons.push_back(v.reason);
  }
  return absl::StrJoin(reasons, "; ");
}

}  // namespace musafarm::agent
