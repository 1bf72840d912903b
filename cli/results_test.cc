#include "cli/results.h"

#include <iconv.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pugixml.hpp"

namespace musafarm::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::StartsWith;

constexpr int64_t kT0 = 1'700'000'000'000'000;  // unix microseconds
const absl::Time kNow = absl::FromUnixMicros(kT0) + absl::Seconds(100);

v1::Task MakeTask(const std::string& id, v1::TaskState state) {
  v1::Task t;
  t.set_id(id);
  t.set_job_id("7");
  t.set_state(state);
  return t;
}

// A matrix of two cells, each with a build stage (no tests) and a test stage.
v1::Job TwoCellJob() {
  v1::Job job;
  job.set_id("7");
  job.set_state(v1::JOB_STATE_FAILED);
  job.set_created_us(kT0);
  job.set_ended_us(kT0 + 65'000'000);
  *job.add_tasks() = MakeTask("7/dev-3.8/base", v1::TASK_STATE_SUCCEEDED);
  v1::Task a = MakeTask("7/dev-3.8/test", v1::TASK_STATE_FAILED);
  v1::TestCounts* c = a.mutable_tests();
  c->set_passed(10);
  c->set_failed(2);
  c->set_skipped(1);
  c->add_failed_tests("tests/unit/test_ops.py::test_add[<f32>&'q\"]");
  c->add_failed_tests("tests/unit/test_ops.py::TestMm::test_mm");
  c->add_passed_tests("tests/unit/test_ops.py::test_sub");  // 1 of the 10 listed
  *job.add_tasks() = a;
  *job.add_tasks() = MakeTask("7/dev-3.10/base", v1::TASK_STATE_SUCCEEDED);
  v1::Task b = MakeTask("7/dev-3.10/test", v1::TASK_STATE_FAILED);
  b.mutable_tests()->set_passed(5);
  b.mutable_tests()->set_errors(1);
  b.mutable_tests()->add_failed_tests("tests/it/test_io.py");  // a collection error
  *job.add_tasks() = b;
  return job;
}

// Whether `s` is UTF-8 made of XML 1.0 Chars only: #x9 | #xA | #xD |
// [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]. Decoded by iconv, not
// by the code under test.
bool OnlyXmlChars(const std::string& s) {
  iconv_t cd = iconv_open("UTF-32LE", "UTF-8");
  if (cd == reinterpret_cast<iconv_t>(-1)) return false;
  std::string in = s;
  std::vector<char32_t> out(s.size() + 1);
  char* inp = in.data();
  size_t inleft = in.size();
  char* outp = reinterpret_cast<char*>(out.data());
  size_t outleft = out.size() * sizeof(char32_t);
  const size_t rc = iconv(cd, &inp, &inleft, &outp, &outleft);
  iconv_close(cd);
  if (rc == static_cast<size_t>(-1) || inleft != 0) return false;  // not UTF-8
  const size_t n = out.size() - outleft / sizeof(char32_t);
  for (size_t i = 0; i < n; ++i) {
    const char32_t c = out[i];
    const bool ok = c == 0x9 || c == 0xA || c == 0xD || (c >= 0x20 && c <= 0xD7FF) ||
                    (c >= 0xE000 && c <= 0xFFFD) || (c >= 0x10000 && c <= 0x10FFFF);
    if (!ok) return false;
  }
  return true;
}

// Parses a JUnit document back; fails the test if it is not well-formed.
pugi::xml_document Parse(const std::string& xml) {
  pugi::xml_document doc;
  const pugi::xml_parse_result r = doc.load_string(xml.c_str(), pugi::parse_default | pugi::parse_declaration);
  EXPECT_TRUE(r) << r.description() << " at " << r.offset << " in\n" << xml;
  EXPECT_TRUE(OnlyXmlChars(xml)) << xml;
  // A character reference can smuggle in what XML forbids (&#1;): only tab,
  // newline and carriage return may come that way.
  for (size_t at = xml.find("&#"); at != std::string::npos; at = xml.find("&#", at + 1)) {
    const std::string ref = xml.substr(at, xml.find(';', at) - at + 1);
    EXPECT_THAT(ref, ::testing::AnyOf("&#9;", "&#09;", "&#10;", "&#13;")) << xml;
  }
  return doc;
}

void ExpectCounts(const pugi::xml_node& n, int tests, int failures, int errors, int skipped) {
  EXPECT_EQ(n.attribute("tests").as_int(-1), tests) << n.name();
  EXPECT_EQ(n.attribute("failures").as_int(-1), failures) << n.name();
  EXPECT_EQ(n.attribute("errors").as_int(-1), errors) << n.name();
  EXPECT_EQ(n.attribute("skipped").as_int(-1), skipped) << n.name();
}

// Was an exact-text comparison of the hand-written document; pugixml chooses
// its own escapes and layout, so the same content is now checked by parsing
// the document back.
TEST(JUnitXmlTest, OneSuitePerTaskWithTestsEscapedAndTotalled) {
  const std::string xml = JUnitXml(TwoCellJob());
  EXPECT_THAT(xml, StartsWith("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites "));
  pugi::xml_document doc = Parse(xml);
  const pugi::xml_node root = doc.child("testsuites");
  ExpectCounts(root, 19, 2, 1, 1);
  std::vector<pugi::xml_node> suites(root.children().begin(), root.children().end());
  ASSERT_EQ(suites.size(), 2u);

  EXPECT_STREQ(suites[0].name(), "testsuite");
  EXPECT_STREQ(suites[0].attribute("name").value(), "dev-3.8/test");
  ExpectCounts(suites[0], 13, 2, 0, 1);
  std::vector<pugi::xml_node> cases(suites[0].children().begin(), suites[0].children().end());
  ASSERT_EQ(cases.size(), 3u);
  EXPECT_STREQ(cases[0].attribute("classname").value(), "tests.unit.test_ops");
  EXPECT_STREQ(cases[0].attribute("name").value(), "test_add[<f32>&'q\"]");
  EXPECT_STREQ(cases[0].child("failure").attribute("message").value(), "failed");
  EXPECT_STREQ(cases[1].attribute("name").value(), "TestMm::test_mm");
  EXPECT_TRUE(cases[1].child("failure"));
  EXPECT_STREQ(cases[2].attribute("name").value(), "test_sub");
  EXPECT_FALSE(cases[2].first_child()) << "a passing case is empty";

  EXPECT_STREQ(suites[1].attribute("name").value(), "dev-3.10/test");
  ExpectCounts(suites[1], 6, 0, 1, 0);
  const pugi::xml_node io = suites[1].child("testcase");
  EXPECT_STREQ(io.attribute("classname").value(), "tests.it.test_io");
  EXPECT_STREQ(io.attribute("name").value(), "tests/it/test_io.py");
  EXPECT_TRUE(io.child("failure"));
  EXPECT_FALSE(io.next_sibling());
}

TEST(JUnitXmlTest, NoTestsGiveAnEmptyDocument) {
  v1::Job job;
  job.set_id("7");
  *job.add_tasks() = MakeTask("7/build", v1::TASK_STATE_SUCCEEDED);
  pugi::xml_document doc = Parse(JUnitXml(job));
  const pugi::xml_node root = doc.child("testsuites");
  ASSERT_TRUE(root);
  ExpectCounts(root, 0, 0, 0, 0);
  EXPECT_FALSE(root.first_child());
}

TEST(JUnitXmlTest, EscapesSuiteNames) {
  v1::Job job;
  job.set_id("7");
  v1::Task t = MakeTask("7/a&b/<t>", v1::TASK_STATE_SUCCEEDED);
  t.mutable_tests()->set_passed(1);
  *job.add_tasks() = t;
  const std::string xml = JUnitXml(job);
  EXPECT_THAT(xml, HasSubstr("<testsuite name=\"a&amp;b/&lt;t"));
  pugi::xml_document doc = Parse(xml);
  EXPECT_STREQ(doc.child("testsuites").child("testsuite").attribute("name").value(), "a&b/<t>");
}

// U+FFFD, `n` times.
std::string Fffd(int n) {
  std::string s;
  for (int i = 0; i < n; ++i) s += "\xEF\xBF\xBD";
  return s;
}

TEST(JUnitXmlTest, HostileNamesGiveWellFormedXml) {
  using namespace std::string_literals;
  v1::Job job;
  job.set_id("7");
  v1::Task t = MakeTask("7/cell\x01\"'<&>/test\xff"s, v1::TASK_STATE_FAILED);
  v1::TestCounts* c = t.mutable_tests();
  c->set_failed(3);
  c->set_passed(1);
  c->add_failed_tests("tests/x.py::test_q[\"'<&>]]>--]");
  c->add_failed_tests("tests/x.py::test_ctl[\x00\x01\x08\x0b\x0c\x1b\x7f]"s);
  // A lone lead byte, a surrogate, U+FFFE, past U+10FFFF, an overlong '/'.
  c->add_failed_tests("tests/x.py::test_bytes[\xc3(\xed\xa0\x80\xef\xbf\xbe\xf4\x90\x80\x80\xc0\xaf]"s);
  c->add_passed_tests("tests/x.py::test_ok[t\tn\nr\r\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80]");
  *job.add_tasks() = t;
  const std::string xml = JUnitXml(job);
  pugi::xml_document doc = Parse(xml);
  const pugi::xml_node suite = doc.child("testsuites").child("testsuite");
  EXPECT_EQ(std::string(suite.attribute("name").value()), "cell?\"'<&>/test" + Fffd(1));
  std::vector<std::string> names;
  for (const pugi::xml_node& tc : suite.children("testcase")) {
    names.push_back(tc.attribute("name").value());
  }
  ASSERT_EQ(names.size(), 4u) << xml;
  EXPECT_EQ(names[0], "test_q[\"'<&>]]>--]");
  EXPECT_EQ(names[1], "test_ctl[??????\x7f]") << "C0 controls go; DEL is an XML Char";
  EXPECT_EQ(names[2], "test_bytes[" + Fffd(1) + "(" + Fffd(3 + 3 + 4 + 2) + "]");
  EXPECT_EQ(names[3], "test_ok[t\tn\nr\r\xc3\xbc\xe2\x82\xac\xf0\x9f\x98\x80]")
      << "tab, newline, carriage return survive as character references";
}

TEST(XmlCharsTest, KeepsXmlCharsAndReplacesTheRest) {
  // Markup is the XML library's to escape: kept as is here.
  EXPECT_EQ(XmlChars("a&b<c>d\"e'f"), "a&b<c>d\"e'f");
  EXPECT_EQ(XmlChars("t\tn\nr\r"), "t\tn\nr\r");
  EXPECT_EQ(XmlChars(std::string("x\x01y\0z", 5)), "x?y?z");
  EXPECT_EQ(XmlChars("ünï €😀"), "ünï €😀");
  EXPECT_EQ(XmlChars("a\xff" "b"), "a\xEF\xBF\xBD" "b");
  EXPECT_EQ(XmlChars("\xef\xbf\xbe"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD") << "U+FFFE";
  EXPECT_EQ(XmlChars("\xe2\x82"), "\xEF\xBF\xBD\xEF\xBF\xBD") << "cut short";
}

TEST(JUnitNamesTest, FileBecomesClassname) {
  EXPECT_THAT(JUnitNames("tests/unit/x.py::test_y[a]"), Pair("tests.unit.x", "test_y[a]"));
  EXPECT_THAT(JUnitNames("tests/x.py::TestA::test_b"), Pair("tests.x", "TestA::test_b"));
  EXPECT_THAT(JUnitNames("test_top.py::t"), Pair("test_top", "t"));
  EXPECT_THAT(JUnitNames("tests/x.py"), Pair("tests.x", "tests/x.py"));
  // Only a trailing .py goes.
  EXPECT_THAT(JUnitNames("a.pyc/b.py::t"), Pair("a.pyc.b", "t"));
}

TEST(SumTestsTest, AddsTasksWithCounts) {
  const v1::TestCounts sum = SumTests(TwoCellJob());
  EXPECT_EQ(sum.passed(), 15);
  EXPECT_EQ(sum.failed(), 2);
  EXPECT_EQ(sum.skipped(), 1);
  EXPECT_EQ(sum.errors(), 1);
  EXPECT_EQ(sum.failed_tests_size(), 0);
  EXPECT_EQ(TotalTests(sum), 19);
  EXPECT_TRUE(HasTests(TwoCellJob()));
}

TEST(RenderResultsTest, TasksWithCountsThenTotal) {
  EXPECT_THAT(
      RenderResults(TwoCellJob(), kNow),
      ElementsAre("TASK           STATE   PASSED  FAILED  SKIPPED  ERRORS",
                  "dev-3.8/test   failed  10      2       1        0",
                  "dev-3.10/test  failed  5       0       0        1",
                  "total          failed  15      2       1        1", "job 7 failed in 1m05s"));
  v1::Job none;
  none.set_id("8");
  none.set_state(v1::JOB_STATE_SUCCEEDED);
  EXPECT_THAT(RenderResults(none, kNow),
              ElementsAre("job 8 has no test results", "job 8 succeeded in 0s"));
}

TEST(ResultsJsonTest, TasksWithCountsAndTotal) {
  v1::Job job = TwoCellJob();
  job.mutable_tasks(1)->mutable_tests()->clear_failed_tests();
  job.mutable_tasks(1)->mutable_tests()->clear_passed_tests();
  job.mutable_tasks(3)->mutable_tests()->clear_failed_tests();
  EXPECT_EQ(
      ResultsJson(job),
      R"({"id":"7","state":"JOB_STATE_FAILED","tasks":[)"
      R"({"id":"7/dev-3.8/test","state":"TASK_STATE_FAILED","tests":{"passed":10,"failed":2,"skipped":1,"errors":0,"failedTests":[],"passedTests":[]}},)"
      R"({"id":"7/dev-3.10/test","state":"TASK_STATE_FAILED","tests":{"passed":5,"failed":0,"skipped":0,"errors":1,"failedTests":[],"passedTests":[]}}],)"
      R"("total":{"passed":15,"failed":2,"skipped":1,"errors":1,"failedTests":[],"passedTests":[]}})");
}

}  // namespace
}  // namespace musafarm::cli
