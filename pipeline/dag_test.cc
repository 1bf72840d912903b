#include "pipeline/dag.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(OrderStagesTest, FileOrderWhereDependenciesAllowIt) {
  // 0 needs 2; 1 needs nothing; 2 needs 1.
  const std::vector<std::vector<Dep>> deps = {{{2, 0, false}}, {}, {{1, 0, false}}};
  const StageOrder o = OrderStages({true, true, true}, deps);
  EXPECT_THAT(o.order, ElementsAre(1, 2, 0));
  EXPECT_THAT(o.cycle, IsEmpty());
}

TEST(OrderStagesTest, StagesThatDoNotRunAreLeftOut) {
  const StageOrder o = OrderStages({true, false, true}, {{}, {}, {}});
  EXPECT_THAT(o.order, ElementsAre(0, 2));
}

TEST(OrderStagesTest, ACycleIsReportedFromItsFirstStageInTheFile) {
  // 0 -> 3 -> 1 -> 3 ... : 0 waits on the cycle {1, 3}; 2 is free.
  const std::vector<std::vector<Dep>> deps = {
      {{3, 0, false}}, {{3, 0, false}}, {}, {{1, 0, false}}};
  const StageOrder o = OrderStages({true, true, true, true}, deps);
  EXPECT_THAT(o.order, ElementsAre(2));
  EXPECT_THAT(o.cycle, ElementsAre(1, 3));
}

// A two-stage pipeline built by hand: `test` needs `build`.
Pipeline TwoStages(const std::string& need) {
  Pipeline p;
  p.axes.push_back({"py", {"3.8", "3.9"}, {"3.8", "3.9"}, false});
  p.file_cells = {Cell{{"3.8"}, {}}, Cell{{"3.9"}, {}}};
  p.cells = p.file_cells;
  for (const char* name : {"test", "build"}) {
    Stage s;
    s.name = name;
    s.field = p.stages.empty() ? "stages[0]" : "stages[1]";
    s.argv.push_back(Text{"make", {}, s.field + ".exec[0]"});
    p.stages.push_back(std::move(s));
  }
  YAML::Mark mark;
  mark.line = 4;
  mark.column = 10;
  p.stages[0].needs.push_back(Need{Text{need, mark, "stages[0].needs[0]"}, false});
  return p;
}

TEST(BuildJobTest, TasksPerCellWithNeedsAsTaskIdsInDependencyOrder) {
  const YamlReader r("", "d.yaml");
  absl::StatusOr<v1::Job> job = BuildJob(Substituter(r, {}), TwoStages("build"), "7", "demo");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->pipeline_file(), "d.yaml");
  std::vector<std::string> ids;
  for (const v1::Task& t : job->tasks()) ids.push_back(t.id());
  EXPECT_THAT(ids, ElementsAre("7/3.8/build", "7/3.8/test", "7/3.9/build", "7/3.9/test"));
  EXPECT_THAT(job->tasks(1).spec().needs(), ElementsAre("7/3.8/build"));
}

TEST(BuildJobTest, AnUnknownNeedPointsAtIt) {
  const YamlReader r("", "d.yaml");
  EXPECT_EQ(BuildJob(Substituter(r, {}), TwoStages("biuld"), "7", "demo").status().message(),
            "d.yaml:5:11: stages[0].needs[0]: unknown stage 'biuld' (stages are: test, build)");
  EXPECT_EQ(BuildJob(Substituter(r, {}), TwoStages("test"), "7", "demo").status().message(),
            "d.yaml:5:11: stages[0].needs[0]: stage 'test' needs itself");
}

}  // namespace
}  // namespace musafarm::pipeline
