#include "tests/e2e/sanitizer_report.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

TEST(SanitizerReportTest, FindsEachSanitizersReportFromItsFirstLine) {
  EXPECT_EQ(FindSanitizerReport("starting\n==42==ERROR: AddressSanitizer: heap-buffer-overflow on "
                                "address 0x1\n    #0 0x2 in main a.cc:3\n"),
            "==42==ERROR: AddressSanitizer: heap-buffer-overflow on address 0x1\n"
            "    #0 0x2 in main a.cc:3\n\n");
  EXPECT_NE(FindSanitizerReport("==7==ERROR: LeakSanitizer: detected memory leaks\n"), "");
  EXPECT_NE(FindSanitizerReport("core/x.cc:12:7: runtime error: signed integer overflow\n"), "");
  EXPECT_NE(FindSanitizerReport("<unknown>: runtime error: member call on null pointer\n"), "");
  EXPECT_NE(FindSanitizerReport("SUMMARY: UndefinedBehaviorSanitizer: undefined-behavior x.cc:1:2\n"),
            "");
  EXPECT_NE(FindSanitizerReport("WARNING: ThreadSanitizer: data race (pid=3)\n"), "");
}

TEST(SanitizerReportTest, OrdinaryOutputIsNoReport) {
  EXPECT_EQ(FindSanitizerReport(""), "");
  EXPECT_EQ(FindSanitizerReport("I1202 coordinator listening on 127.0.0.1:4000\n"), "");
  // A task may print these words itself; only UBSan's FILE:LINE:COL form counts.
  EXPECT_EQ(FindSanitizerReport("task said: runtime error: out of cheese\n"), "");
  EXPECT_EQ(FindSanitizerReport("x.cc:12: runtime error: no column\n"), "");
}

TEST(SanitizerReportTest, KeepsAtMostFortyLines) {
  std::string output = "==1==ERROR: AddressSanitizer: SEGV\n";
  for (int i = 0; i < 100; ++i) output += "    #frame\n";
  const std::string report = FindSanitizerReport(output);
  EXPECT_EQ(std::count(report.begin(), report.end(), '\n'), 40);
}

// The harness fails the test when a child's output holds a report, whatever the
// test itself checked about the child.
TEST(SanitizerReportTest, HarnessFailsATestWhoseChildPrintedAReport) {
  const std::string log = ::testing::TempDir() + "/sanitizer_report_child.log";
  std::filesystem::remove(log);  // Process appends
  auto child = Process::Start(
      {"/bin/sh", "-c", "echo '==9==ERROR: AddressSanitizer: heap-use-after-free' >&2; exit 1"},
      log);
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ((*child)->Wait(absl::Seconds(30)), 1);
  EXPECT_NONFATAL_FAILURE(child->reset(), "holds a sanitizer report");
}

TEST(SanitizerReportTest, HarnessLetsAQuietChildPass) {
  const std::string log = ::testing::TempDir() + "/sanitizer_report_quiet.log";
  std::filesystem::remove(log);
  auto child = Process::Start({"/bin/sh", "-c", "echo fine; exit 3"}, log);
  ASSERT_TRUE(child.ok()) << child.status();
  EXPECT_EQ((*child)->Wait(absl::Seconds(30)), 3);
  child->reset();  // no failure recorded: the test passes
}

}  // namespace
}  // namespace musafarm::e2e
