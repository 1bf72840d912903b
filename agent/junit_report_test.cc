#include "agent/junit_report.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::string> Ids(const google::protobuf::RepeatedPtrField<std::string>& ids) {
  return {ids.begin(), ids.end()};
}

// What pytest 7 writes with --junitxml (junit_family xunit2, the default).
constexpr char kPytestReport[] = R"(<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5" time="0.1"
 timestamp="2026-12-02T07:00:00" hostname="h">
<testcase classname="tests.unit.test_ops" name="test_add[int]" time="0.001" />
<testcase classname="tests.unit.test_ops" name="test_add[half]" time="0.002">
  <failure message="assert 1 == 2">def test_add(): ...
E   assert 1 == 2</failure></testcase>
<testcase classname="tests.unit.test_ops.TestMm" name="test_mm" time="0.0">
  <error message="failed on setup with &quot;RuntimeError: no device&quot;">...</error></testcase>
<testcase classname="tests.unit.test_ops" name="test_skip" time="0.0">
  <skipped type="pytest.skip" message="no GPU">tests/unit/test_ops.py:9: no GPU</skipped></testcase>
<testcase classname="tests.unit.test_ops" name="test_lt[a&lt;b]" time="0.0" />
</testsuite></testsuites>
)";

TEST(JUnitReportTest, PytestReportBecomesCountsAndIds) {
  absl::StatusOr<v1::TestCounts> c = ParseJUnitXml(kPytestReport);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->passed(), 2);
  EXPECT_EQ(c->failed(), 1);
  EXPECT_EQ(c->errors(), 1);
  EXPECT_EQ(c->skipped(), 1);
  EXPECT_THAT(Ids(c->failed_tests()), ElementsAre("tests.unit.test_ops.TestMm::test_mm",
                                                  "tests.unit.test_ops::test_add[half]"));
  EXPECT_THAT(Ids(c->passed_tests()), ElementsAre("tests.unit.test_ops::test_add[int]",
                                                  "tests.unit.test_ops::test_lt[a<b]"));
}

TEST(JUnitReportTest, FileAttributeGivesPytestNodeIds) {
  // junit_family=xunit1 writes file= and line=: the node id pytest prints.
  const char* xml = R"(<testsuite tests="3">
    <testcase file="tests/unit/test_ops.py" classname="tests.unit.test_ops" name="test_a"><failure/></testcase>
    <testcase file="tests/unit/test_ops.py" classname="tests.unit.test_ops.TestMm" name="test_b"><failure/></testcase>
    <testcase file="other.py" classname="tests.unit.test_ops" name="test_c"><failure/></testcase>
  </testsuite>)";
  absl::StatusOr<v1::TestCounts> c = ParseJUnitXml(xml);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(Ids(c->failed_tests()),
              ElementsAre("tests.unit.test_ops::test_c", "tests/unit/test_ops.py::TestMm::test_b",
                          "tests/unit/test_ops.py::test_a"));
}

TEST(JUnitReportTest, NestedSuitesAndACaseWithoutClassname) {
  const char* xml = R"(<testsuites><testsuite name="outer"><testsuite name="inner">
    <testcase name="alone"/><testcase classname="k" name="bad"><failure/><error/></testcase>
  </testsuite></testsuite></testsuites>)";
  absl::StatusOr<v1::TestCounts> c = ParseJUnitXml(xml);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->passed(), 1);
  // Failed in the call and in teardown: pytest's summary says "1 failed, 1 error".
  EXPECT_EQ(c->failed(), 1);
  EXPECT_EQ(c->errors(), 1);
  EXPECT_THAT(Ids(c->failed_tests()), ElementsAre("k::bad"));
  EXPECT_THAT(Ids(c->passed_tests()), ElementsAre("alone"));
}

TEST(JUnitReportTest, SuitesWithoutCasesCountFromAttributes) {
  const char* xml = R"(<testsuites tests="99"><testsuite tests="10" failures="2" errors="1" skipped="3"/>
    <testsuite tests="4" failures="x"/></testsuites>)";
  absl::StatusOr<v1::TestCounts> c = ParseJUnitXml(xml);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->passed(), 4 + 4);
  EXPECT_EQ(c->failed(), 2);
  EXPECT_EQ(c->errors(), 1);
  EXPECT_EQ(c->skipped(), 3);
  EXPECT_THAT(Ids(c->failed_tests()), IsEmpty());
}

TEST(JUnitReportTest, HugeAttributeCountsSaturate) {
  absl::StatusOr<v1::TestCounts> c =
      ParseJUnitXml(R"(<testsuite tests="99999999999999999" failures="9223372036854775807"/>)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->failed(), INT32_MAX);
  EXPECT_GE(c->passed(), 0);
}

TEST(JUnitReportTest, RefusesWhatIsNotAReport) {
  absl::StatusOr<v1::TestCounts> c = ParseJUnitXml("<testsuite><testcase name='x'></testsuite>");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(c.status().message(), HasSubstr("not a JUnit XML report: Start-end tags mismatch at byte"));

  c = ParseJUnitXml("<html><body/></html>");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("the root element is <html>"));

  c = ParseJUnitXml("12 passed in 0.1s");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("not a JUnit XML report"));
}

TEST(JUnitReportTest, RefusesDeepNestingTooManyElementsAndHugeReports) {
  std::string deep;
  for (int i = 0; i < kMaxJUnitDepth + 1; ++i) deep += "<testsuite>";
  for (int i = 0; i < kMaxJUnitDepth + 1; ++i) deep += "</testsuite>";
  absl::StatusOr<v1::TestCounts> c = ParseJUnitXml(deep);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("nests deeper than 32 elements"));

  std::string many = "<testsuite>";
  for (size_t i = 0; i < kMaxJUnitElements; ++i) many += "<a/>";
  many += "</testsuite>";
  c = ParseJUnitXml(many);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("the limit is 2000000 elements"));

  c = ParseJUnitXml(std::string(kMaxJUnitBytes + 1, ' '));
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("bytes; the limit is 33554432"));
}

TEST(JUnitReportTest, EntitiesAreNotExpanded) {
  // A "billion laughs" document: pugixml reads no DTD entities, so &lol9; is
  // left as text and costs nothing.
  std::string xml = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY lol \"lol\">";
  for (int i = 1; i < 10; ++i) {
    xml += absl::StrCat("<!ENTITY lol", i, " \"");
    for (int j = 0; j < 10; ++j) xml += absl::StrCat("&lol", i == 1 ? "" : absl::StrCat(i - 1), ";");
    xml += "\">";
  }
  xml += "]><testsuite><testcase classname=\"c\" name=\"&lol9;\"><failure/></testcase></testsuite>";
  absl::StatusOr<v1::TestCounts> c = ParseJUnitXml(xml);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->failed_tests_size(), 1);
  EXPECT_LT(c->failed_tests(0).size(), 20u);
}

TEST(JUnitReportTest, IdsAreUtf8AndBounded) {
  std::string xml = "<testsuite><testcase classname=\"c\" name=\"\xFF\xFE\"/>";
  xml += absl::StrCat("<testcase classname=\"c\" name=\"", std::string(5000, 'n'), "\"/>");
  for (int i = 0; i < 3000; ++i) {
    xml += absl::StrCat("<testcase classname=\"c\" name=\"", i, std::string(1000, 'x'), "\"/>");
  }
  xml += "</testsuite>";
  absl::StatusOr<v1::TestCounts> c = ParseJUnitXml(xml);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->passed(), 3002);  // exact past the cut
  size_t bytes = 0;
  for (const std::string& id : c->passed_tests()) {
    EXPECT_LE(id.size(), kMaxJUnitIdLength);
    bytes += id.size();
  }
  EXPECT_LE(bytes, kMaxJUnitIdBytes);
  EXPECT_GT(c->passed_tests_size(), 900);
  EXPECT_LT(c->passed_tests_size(), 3002);
}

// Found by tests/fuzz (corpus/junit/bad_bytes_id.xml): bad bytes become
// 3-byte U+FFFDs, so an id cut before coercing grew past its bound.
TEST(JUnitReportTest, AnIdOfBadBytesStaysWithinItsBound) {
  const std::string xml =
      absl::StrCat("<testsuite><testcase classname=\"c\" name=\"", std::string(1500, '\xFF'),
                   "\"><failure/></testcase></testsuite>");
  absl::StatusOr<v1::TestCounts> c = ParseJUnitXml(xml);
  ASSERT_TRUE(c.ok()) << c.status();
  ASSERT_EQ(c->failed_tests_size(), 1);
  EXPECT_LE(c->failed_tests(0).size(), kMaxJUnitIdLength);
  EXPECT_GT(c->failed_tests(0).size(), kMaxJUnitIdLength - 3);
  EXPECT_TRUE(absl::StartsWith(c->failed_tests(0), "c::\xEF\xBF\xBD"));
}

TEST(JUnitReportTest, LooksLikeJUnitXml) {
  EXPECT_TRUE(LooksLikeJUnitXml(kPytestReport));
  EXPECT_TRUE(LooksLikeJUnitXml("\xEF\xBB\xBF\n <testsuite/>"));
  EXPECT_FALSE(LooksLikeJUnitXml("==== 1 passed in 0.1s ====\n<testsuite"));
  EXPECT_FALSE(LooksLikeJUnitXml("<html/>"));
}

}  // namespace
}  // namespace musafarm::agent
