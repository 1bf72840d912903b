#include "agent/pytest_summary.h"

#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

TEST(PytestSummaryTest, ParsesCountsAndFailingNodeIds) {
  const char* out = R"(============================= test session starts ==============================
collected 14 items

tests/unittest/test_add.py::test_add_int PASSED                          [  7%]
tests/unittest/test_add.py::test_add_half FAILED                         [ 14%]
tests/unittest/test_mm.py::test_mm ERROR                                 [ 21%]

=================================== FAILURES ===================================
=========================== short test summary info ============================
FAILED tests/unittest/test_add.py::test_add_half - AssertionError: assert 1 == 2
ERROR tests/unittest/test_mm.py::test_mm - RuntimeError: no device
==== 1 failed, 10 passed, 2 skipped, 1 error, 3 warnings in 12.34s ====
)";
  v1::TestCounts c;
  ASSERT_TRUE(ParsePytestOutput(out, &c));
  EXPECT_EQ(c.passed(), 10);
  EXPECT_EQ(c.failed(), 1);
  EXPECT_EQ(c.skipped(), 2);
  EXPECT_EQ(c.errors(), 1);
  EXPECT_EQ(std::vector<std::string>(c.failed_tests().begin(), c.failed_tests().end()),
            (std::vector<std::string>{"tests/unittest/test_add.py::test_add_half",
                                      "tests/unittest/test_mm.py::test_mm"}));
  EXPECT_EQ(std::vector<std::string>(c.passed_tests().begin(), c.passed_tests().end()),
            (std::vector<std::string>{"tests/unittest/test_add.py::test_add_int"}));
}

TEST(PytestSummaryTest, AddsUpSeveralFilesAndRuns) {
  v1::TestCounts c;
  ASSERT_TRUE(ParsePytestOutput("=== 3 passed in 1.0s ===\n", &c));
  ASSERT_TRUE(ParsePytestOutput("== 2 passed, 1 skipped in 0.5s ==\n== 1 failed in 0.1s ==\n", &c));
  EXPECT_EQ(c.passed(), 5);
  EXPECT_EQ(c.skipped(), 1);
  EXPECT_EQ(c.failed(), 1);
}

// Found by tests/fuzz/pytest_summary_fuzzer: huge counts overflowed an int32
// (undefined behaviour) and a negative count was taken.
TEST(PytestSummaryTest, CountsSaturateAndANegativeCountIsNotPytests) {
  v1::TestCounts c;
  ASSERT_TRUE(ParsePytestOutput("== 2147483647 passed, 1 passed in 1s ==\n", &c));
  EXPECT_EQ(c.passed(), 2147483647);
  ASSERT_TRUE(ParsePytestOutput("== 5 passed in 1s ==\n", &c));
  EXPECT_EQ(c.passed(), 2147483647);
  EXPECT_FALSE(ParsePytestOutput("== -3 failed in 0s ==\n", &c));
  EXPECT_EQ(c.failed(), 0);
}

TEST(PytestSummaryTest, OtherTextIsNotASummary) {
  v1::TestCounts c;
  EXPECT_FALSE(ParsePytestOutput("==== FAILURES ====\nbuild ok\n=== test session starts ===\n", &c));
  EXPECT_FALSE(ParsePytestOutput("", &c));
  EXPECT_EQ(c.passed() + c.failed() + c.skipped() + c.errors(), 0);
}

// A test may be named in any bytes; the names travel as proto strings, which
// must be UTF-8 or the coordinator cannot parse the result.
TEST(PytestSummaryTest, NodeIdsThatAreNotUtf8AreRepairedSoTheCountsStillParse) {
  v1::TestCounts c;
  ASSERT_TRUE(ParsePytestOutput("tests/t.py::test_ok_\xFE PASSED [ 50%]\n"
                                "FAILED tests/t.py::test_\xFF[\xC3] - boom\n"
                                "== 1 failed, 1 passed in 0.1s ==\n",
                                &c));
  ASSERT_EQ(c.failed_tests_size(), 1);
  EXPECT_EQ(c.failed_tests(0), "tests/t.py::test_\xEF\xBF\xBD[\xEF\xBF\xBD]");
  ASSERT_EQ(c.passed_tests_size(), 1);
  EXPECT_EQ(c.passed_tests(0), "tests/t.py::test_ok_\xEF\xBF\xBD");
  v1::TestCounts back;
  EXPECT_TRUE(back.ParseFromString(c.SerializeAsString()));
}

}  // namespace
}  // namespace musafarm::agent
