#include "coordinator/nightly_diff.h"

#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

v1::Task* AddTask(v1::Job& job, const std::string& key, std::vector<std::string> failed,
                  std::vector<std::string> passed) {
  v1::Task* t = job.add_tasks();
  t->set_id(job.id() + "/" + key);
  t->mutable_tests()->set_failed(static_cast<int>(failed.size()));
  t->mutable_tests()->set_passed(static_cast<int>(passed.size()));
  for (auto& f : failed) t->mutable_tests()->add_failed_tests(f);
  for (auto& p : passed) t->mutable_tests()->add_passed_tests(p);
  return t;
}

TEST(NightlyDiffTest, NewlyFailingFixedAndStillFailingPerCellAndTest) {
  v1::Job prev, cur;
  prev.set_id("7");
  cur.set_id("9");
  AddTask(prev, "dev-3.10/test", {"t.py::a", "t.py::b"}, {"t.py::c"});
  AddTask(prev, "dev-3.11/test", {}, {"t.py::a"});
  AddTask(cur, "dev-3.10/test", {"t.py::b", "t.py::c"}, {"t.py::a"});
  AddTask(cur, "dev-3.11/test", {"t.py::a"}, {});
  NightlyDiff d = CompareRuns(prev, cur);
  EXPECT_EQ(d.previous_job_id, "7");
  EXPECT_EQ(d.newly_failing, (std::vector<TestChange>{{"dev-3.10", "dev-3.10/test", "t.py::c"},
                                                      {"dev-3.11", "dev-3.11/test", "t.py::a"}}));
  EXPECT_EQ(d.fixed, (std::vector<TestChange>{{"dev-3.10", "dev-3.10/test", "t.py::a"}}));
  EXPECT_EQ(d.still_failing, (std::vector<TestChange>{{"dev-3.10", "dev-3.10/test", "t.py::b"}}));
  nlohmann::json j = DiffToJson(d);
  EXPECT_EQ(j["newly_failing"][1]["cell"], "dev-3.11");
  EXPECT_EQ(j["fixed"][0]["test"], "t.py::a");
  const std::string text = DiffSummary(d);
  EXPECT_NE(text.find("newly failing (2): dev-3.10: t.py::c, dev-3.11: t.py::a"), std::string::npos)
      << text;
  EXPECT_NE(text.find("fixed (1): dev-3.10: t.py::a"), std::string::npos) << text;
}

TEST(NightlyDiffTest, ATaskThatReportedNoTestsFixesNothing) {
  v1::Job prev, cur;
  prev.set_id("1");
  cur.set_id("2");
  AddTask(prev, "test", {"t.py::a"}, {});
  v1::Task* skipped = cur.add_tasks();  // e.g. skipped: its build failed
  skipped->set_id("2/test");
  NightlyDiff d = CompareRuns(prev, cur);
  EXPECT_TRUE(d.empty());
}

}  // namespace
}  // namespace musafarm::coordinator
