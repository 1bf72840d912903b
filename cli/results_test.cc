#include "cli/results.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

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

TEST(JUnitXmlTest, OneSuitePerTaskWithTestsEscapedAndTotalled) {
  EXPECT_EQ(JUnitXml(TwoCellJob()),
            R"(<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="19" failures="2" errors="1" skipped="1">
  <testsuite name="dev-3.8/test" tests="13" failures="2" errors="0" skipped="1">
    <testcase classname="tests.unit.test_ops" name="test_add[&lt;f32&gt;&amp;&apos;q&quot;]">
      <failure message="failed"/>
    </testcase>
    <testcase classname="tests.unit.test_ops" name="TestMm::test_mm">
      <failure message="failed"/>
    </testcase>
    <testcase classname="tests.unit.test_ops" name="test_sub"/>
  </testsuite>
  <testsuite name="dev-3.10/test" tests="6" failures="0" errors="1" skipped="0">
    <testcase classname="tests.it.test_io" name="tests/it/test_io.py">
      <failure message="failed"/>
    </testcase>
  </testsuite>
</testsuites>
)");
}

TEST(JUnitXmlTest, NoTestsGiveAnEmptyDocument) {
  v1::Job job;
  job.set_id("7");
  *job.add_tasks() = MakeTask("7/build", v1::TASK_STATE_SUCCEEDED);
  EXPECT_EQ(JUnitXml(job), R"(<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="0" failures="0" errors="0" skipped="0">
</testsuites>
)");
}

TEST(JUnitXmlTest, EscapesSuiteNames) {
  v1::Job job;
  job.set_id("7");
  v1::Task t = MakeTask("7/a&b/<t>", v1::TASK_STATE_SUCCEEDED);
  t.mutable_tests()->set_passed(1);
  *job.add_tasks() = t;
  EXPECT_THAT(JUnitXml(job), ::testing::HasSubstr("<testsuite name=\"a&amp;b/&lt;t&gt;\" "));
}

TEST(XmlEscapeTest, EntitiesAndControlCharacters) {
  EXPECT_EQ(XmlEscape("a&b<c>d\"e'f"), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
  EXPECT_EQ(XmlEscape("t\tn\nr\r"), "t&#9;n&#10;r&#13;");
  EXPECT_EQ(XmlEscape(std::string("x\x01y\0z", 5)), "x?y?z");
  EXPECT_EQ(XmlEscape("ünï"), "ünï");
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
