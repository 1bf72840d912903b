#include "agent/suite_verdict.h"

#include <gtest/gtest.h>

namespace musafarm::agent {
namespace {

constexpr char kPassing[] =
    "tests/unittest/test_add.py::test_add PASSED                              [ 50%]\n"
    "tests/unittest/test_mm.py::test_mm SKIPPED (no fp64)                     [100%]\n"
    "==================== 1 passed, 1 skipped in 0.30s =====================\n";
constexpr char kFailing[] =
    "FAILED tests/unittest/test_add.py::test_add_half - AssertionError\n"
    "=================== 1 failed, 1 passed in 0.30s ====================\n";

v1::TestSuite Unit() {
  v1::TestSuite s;
  s.set_name("unit");
  s.set_output("/home/ut_output.txt");
  s.set_exit_status("/home/ut_exit_code.txt");
  return s;
}

SuiteFiles Files(std::optional<std::string> output, std::optional<std::string> status) {
  SuiteFiles f;
  f.output = std::move(output);
  f.exit_status = std::move(status);
  return f;
}

TEST(SuiteVerdictTest, ExitZeroWithAPassingSummaryPasses) {
  const SuiteVerdict v = JudgeSuite(Unit(), Files(kPassing, "0\n"));
  EXPECT_TRUE(v.passed) << v.reason;
  EXPECT_EQ(v.reason, "");
  EXPECT_TRUE(v.has_counts);
  EXPECT_EQ(v.counts.passed(), 1);
  EXPECT_EQ(v.counts.skipped(), 1);
}

TEST(SuiteVerdictTest, ACrashBeforeTheSummaryFailsNamingTheSignal) {
  const SuiteVerdict v =
      JudgeSuite(Unit(), Files("tests/unittest/test_add.py::test_add PASSED\n", "139\n"));
  EXPECT_FALSE(v.passed);
  EXPECT_EQ(v.reason, "suite unit: exited 139 (killed by signal 11) before printing a test summary");
}

TEST(SuiteVerdictTest, ANonZeroExitWithAPassingSummaryFails) {
  const SuiteVerdict v = JudgeSuite(Unit(), Files(kPassing, "1"));
  EXPECT_FALSE(v.passed);
  EXPECT_EQ(v.reason,
            "suite unit: exited 1 (pytest: tests failed) although its summary says 1 passed, "
            "1 skipped");
}

TEST(SuiteVerdictTest, FailingTestsFailWithTheirCountsAndTheExitStatus) {
  const SuiteVerdict v = JudgeSuite(Unit(), Files(kFailing, "1\n"));
  EXPECT_FALSE(v.passed);
  EXPECT_EQ(v.reason, "suite unit: 1 failed, 1 passed (exited 1 (pytest: tests failed))");
  EXPECT_EQ(v.counts.failed(), 1);
}

TEST(SuiteVerdictTest, ATimeoutFailsSayingSo) {
  EXPECT_EQ(JudgeSuite(Unit(), Files("collecting ...\n", "124\n")).reason,
            "suite unit: exited 124 (timed out) before printing a test summary");
  EXPECT_EQ(JudgeSuite(Unit(), Files("collecting ...\n", "137\n")).reason,
            "suite unit: exited 137 (killed after timing out) before printing a test summary");
}

TEST(SuiteVerdictTest, AMissingOutputFailsNamingTheFile) {
  const SuiteVerdict v = JudgeSuite(Unit(), Files(std::nullopt, "0\n"));
  EXPECT_FALSE(v.passed);
  EXPECT_EQ(v.reason, "suite unit: exited 0 and its output /home/ut_output.txt is missing");
}

TEST(SuiteVerdictTest, AMissingExitStatusFailsEvenWithAPassingSummary) {
  const SuiteVerdict v = JudgeSuite(Unit(), Files(kPassing, std::nullopt));
  EXPECT_FALSE(v.passed);
  EXPECT_EQ(v.reason,
            "suite unit: no exit status: /home/ut_exit_code.txt was not written (did the suite "
            "start?)");
}

TEST(SuiteVerdictTest, ExitZeroWithoutASummaryFails) {
  const SuiteVerdict v = JudgeSuite(Unit(), Files("ImportError: no module torch_musa\n", "0"));
  EXPECT_FALSE(v.passed);
  EXPECT_EQ(v.reason, "suite unit: exited 0 but /home/ut_output.txt holds no test summary");
}

TEST(SuiteVerdictTest, NotRunOrAbsentSuitesAndGarbageStatusesFail) {
  EXPECT_EQ(JudgeSuite(Unit(), Files("not run", "skipped\n")).reason,
            "suite unit: was not run (RUN_TESTS is not 1 in the container)");
  EXPECT_EQ(JudgeSuite(Unit(), Files("no tests", "missing\n")).reason,
            "suite unit: the checkout has no such suite (exit status file says 'missing')");
  EXPECT_EQ(JudgeSuite(Unit(), Files(kPassing, std::string(100, 'x'))).reason,
            "suite unit: /home/ut_exit_code.txt holds '" + std::string(40, 'x') +
                "...', not an exit status");
  // Not UTF-8: the reason stays valid text for the coordinator.
  const SuiteVerdict bad = JudgeSuite(Unit(), Files(kPassing, "\xff\xfe"));
  EXPECT_FALSE(bad.passed);
  EXPECT_NE(bad.reason.find("not an exit status"), std::string::npos);
}

TEST(SuiteVerdictTest, AJUnitReportIsTheResultWhenItCanBeRead) {
  v1::TestSuite suite = Unit();
  suite.set_junit("/home/ut_junit.xml");
  SuiteFiles f = Files("pytest crashed while printing\n", "0\n");
  f.junit =
      R"(<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="2">)"
      R"(<testcase classname="t" name="a"/><testcase classname="t" name="b"><failure/></testcase>)"
      R"(</testsuite></testsuites>)";
  const SuiteVerdict v = JudgeSuite(suite, f);
  EXPECT_FALSE(v.passed);
  EXPECT_EQ(v.reason, "suite unit: 1 failed, 1 passed although it exited 0");
  // Not a readable report: the text output decides, as before.
  f.junit = "<testsuites><testsuite";
  f.output = kPassing;
  EXPECT_TRUE(JudgeSuite(suite, f).passed);
}

TEST(SuiteVerdictTest, FailuresOfSeveralSuitesAreJoined) {
  v1::TestSuite integration = Unit();
  integration.set_name("integration");
  const std::vector<SuiteVerdict> verdicts = {
      JudgeSuite(Unit(), Files(kPassing, "0")),
      JudgeSuite(integration, Files(std::nullopt, "0")),
      JudgeSuite(Unit(), Files("", "2")),
  };
  EXPECT_EQ(SuiteFailure(verdicts),
            "suite integration: exited 0 and its output /home/ut_output.txt is missing; "
            "suite unit: exited 2 (pytest: interrupted) before printing a test summary");
  EXPECT_EQ(SuiteFailure({verdicts[0]}), "");
}

}  // namespace
}  // namespace musafarm::agent
