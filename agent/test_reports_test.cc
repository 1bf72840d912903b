#include "agent/test_reports.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kText[] = R"(FAILED tests/t.py::test_text - assert 0
==== 1 failed, 12 passed, 1 skipped in 0.5s ====
)";
constexpr char kReport[] = R"(<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite tests="3"><testcase classname="tests.t" name="test_a"/>
<testcase classname="tests.t" name="test_b"><failure message="x"/></testcase>
<testcase classname="tests.t" name="test_c"><skipped/></testcase></testsuite></testsuites>)";

TEST(TestReportsTest, NothingFound) {
  TestReports r;
  EXPECT_EQ(r.Add("out.txt", "no tests here\n"), "");
  EXPECT_FALSE(r.Result().has_value());
}

TEST(TestReportsTest, TextSummaryAlone) {
  TestReports r;
  EXPECT_EQ(r.Add("ut_output.txt", kText), "");
  ASSERT_TRUE(r.Result().has_value());
  EXPECT_EQ(r.Result()->passed(), 12);
  EXPECT_THAT(r.Result()->failed_tests(), ElementsAre("tests/t.py::test_text"));
}

TEST(TestReportsTest, JUnitWinsOverTheTextSummary) {
  TestReports r;
  EXPECT_EQ(r.Add("ut_output.txt", kText), "");
  EXPECT_EQ(r.Add("report.xml", kReport), "");
  ASSERT_TRUE(r.Result().has_value());
  EXPECT_EQ(r.Result()->passed(), 1);
  EXPECT_EQ(r.Result()->failed(), 1);
  EXPECT_EQ(r.Result()->skipped(), 1);
  EXPECT_THAT(r.Result()->failed_tests(), ElementsAre("tests.t::test_b"));
  EXPECT_THAT(r.Result()->passed_tests(), ElementsAre("tests.t::test_a"));
}

TEST(TestReportsTest, ReportsAddUpAndFailedWins) {
  TestReports r;
  EXPECT_EQ(r.Add("a.xml", kReport), "");
  EXPECT_EQ(r.Add("b.xml", R"(<testsuite><testcase classname="tests.t" name="test_a"><error/></testcase></testsuite>)"),
            "");
  ASSERT_TRUE(r.Result().has_value());
  EXPECT_EQ(r.Result()->passed(), 1);
  EXPECT_EQ(r.Result()->errors(), 1);
  EXPECT_THAT(r.Result()->failed_tests(), ElementsAre("tests.t::test_a", "tests.t::test_b"));
  EXPECT_THAT(r.Result()->passed_tests(), ElementsAre());
}

TEST(TestReportsTest, ABrokenReportIsNamedAndCountsForNothing) {
  TestReports r;
  EXPECT_THAT(r.Add("junit.xml", "<testsuite><testcase>"),
              HasSubstr("musafarm-agent: test report junit.xml not read: not a JUnit XML report"));
  EXPECT_FALSE(r.Result().has_value());
  EXPECT_EQ(r.Add("ut_output.txt", kText), "");
  ASSERT_TRUE(r.Result().has_value());
  EXPECT_EQ(r.Result()->passed(), 12);
}

}  // namespace
}  // namespace musafarm::agent
