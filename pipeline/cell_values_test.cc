#include "pipeline/cell_values.h"

#include <map>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pipeline/spec.h"

namespace musafarm::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr absl::string_view kRelease = R"yaml(
name: r
params: {tag: latest}
secrets: [TORCH_WHL_URL, MUDNN_URL]
matrix:
  arch: [qy2, ph1]
  python: ["3.8", "3.9"]
stages:
  - name: release
    secrets: [TORCH_WHL_URL, MUDNN_URL]
    exec: [build, "${tag}"]
)yaml";

const v1::Task& Task(const v1::Job& job, const std::string& id) {
  for (const v1::Task& t : job.tasks()) {
    if (t.id() == id) return t;
  }
  ADD_FAILURE() << "no task " << id;
  return v1::Task::default_instance();
}

TEST(CellValuesTest, KeysParseAndPrint) {
  const std::optional<CellKey> k = ParseCellKey("TORCH_WHL_URL@python=3.10");
  ASSERT_TRUE(k.has_value());
  EXPECT_EQ(k->name, "TORCH_WHL_URL");
  EXPECT_EQ(k->axis, "python");
  EXPECT_EQ(k->value, "3.10");
  EXPECT_EQ(CellKeyName("TORCH_WHL_URL", "python", "3.10"), "TORCH_WHL_URL@python=3.10");
  for (const char* bad : {"TORCH_WHL_URL", "@python=3.8", "X@=3.8", "X@python=", "X@python"}) {
    EXPECT_FALSE(ParseCellKey(bad).has_value()) << bad;
  }
}

TEST(CellValuesTest, EachCellGetsItsOwnSecretSourceAndParamValue) {
  ExpandOptions o;
  o.secrets = {"TORCH_WHL_URL@python=3.8", "TORCH_WHL_URL@python=3.9", "MUDNN_URL@arch=qy2",
               "MUDNN_URL"};
  o.params = {{"tag@arch=ph1", "ph1-build"}};
  absl::StatusOr<v1::Job> job = ParseAndExpand(kRelease, "r.yaml", "1", o);
  ASSERT_TRUE(job.ok()) << job.status();
  auto sources = [&](const std::string& id) {
    const auto& m = Task(*job, id).spec().run().secret_sources();
    return std::map<std::string, std::string>(m.begin(), m.end());
  };
  EXPECT_THAT(sources("1/qy2-3.8/release"),
              UnorderedElementsAre(Pair("TORCH_WHL_URL", "TORCH_WHL_URL@python=3.8"),
                                   Pair("MUDNN_URL", "MUDNN_URL@arch=qy2")));
  // ph1 has no muDNN URL of its own: the job-wide one (no source entry).
  EXPECT_THAT(sources("1/ph1-3.9/release"),
              UnorderedElementsAre(Pair("TORCH_WHL_URL", "TORCH_WHL_URL@python=3.9")));
  EXPECT_THAT(Task(*job, "1/qy2-3.9/release").spec().run().exec().argv(),
              ElementsAre("build", "latest"));
  EXPECT_THAT(Task(*job, "1/ph1-3.9/release").spec().run().exec().argv(),
              ElementsAre("build", "ph1-build"));
  // The job shows the per-cell param and lists the per-cell secrets by name.
  EXPECT_EQ(job->params().at("tag@arch=ph1"), "ph1-build");
  EXPECT_THAT(job->secrets(), ElementsAre("MUDNN_URL", "MUDNN_URL@arch=qy2",
                                          "TORCH_WHL_URL@python=3.8", "TORCH_WHL_URL@python=3.9"));
}

TEST(CellValuesTest, AValueForACellTheJobDoesNotBuildIsKeptUnused) {
  ExpandOptions o;
  o.axes = {{"python", {"3.8"}}};
  o.secrets = {"TORCH_WHL_URL@python=3.8", "TORCH_WHL_URL@python=3.9"};
  absl::StatusOr<v1::Job> job = ParseAndExpand(kRelease, "r.yaml", "1", o);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->tasks_size(), 2);
}

TEST(CellValuesTest, BadKeysAreRefusedNamingTheKey) {
  auto error = [](ExpandOptions o) {
    absl::StatusOr<v1::Job> job = ParseAndExpand(kRelease, "r.yaml", "1", o);
    return job.ok() ? std::string("expanded") : std::string(job.status().message());
  };
  ExpandOptions undeclared;
  undeclared.secrets = {"MCCL_URL@arch=qy2"};
  EXPECT_THAT(error(undeclared), HasSubstr("r.yaml: --secret MCCL_URL@arch=qy2: 'MCCL_URL' is "
                                           "not declared in the pipeline's 'secrets'"));
  ExpandOptions no_axis;
  no_axis.secrets = {"MUDNN_URL@gpu=qy2"};
  EXPECT_THAT(error(no_axis), HasSubstr("'gpu' is not a matrix axis (axes: arch, python)"));
  ExpandOptions no_value;
  no_value.params = {{"tag@python=3.11", "x"}};
  EXPECT_THAT(error(no_value),
              HasSubstr("--param tag@python=3.11: '3.11' is not a value of axis python (3.8, 3.9)"));
  ExpandOptions two_axes;
  two_axes.secrets = {"MUDNN_URL@arch=qy2", "MUDNN_URL@python=3.8"};
  EXPECT_THAT(error(two_axes), HasSubstr("per-cell values by two axes meet in cell (qy2, 3.8)"));
}

}  // namespace
}  // namespace musafarm::pipeline

namespace musafarm::pipeline {
namespace {

constexpr absl::string_view kRecipes = R"yaml(
name: r
matrix:
  python: ["3.8"]
  recipe: [dev1.5.1]
params:
  sys: "ubuntu:20.04"
  sys@recipe=v2.0.1: "ubuntu:22.04"
  pytorch_tag: v2.0.0
  pytorch_tag@recipe=v2.0.1: v2.2.0
stages:
  - name: base
    exec: [build, "${sys}", "${pytorch_tag}"]
)yaml";

std::vector<std::string> ArgvOf(const v1::Job& job) {
  const auto& argv = job.tasks(0).spec().run().exec().argv();
  return {argv.begin(), argv.end()};
}

TEST(CellValuesTest, TheFileGivesPerCellDefaultsThatTheSubmitterOverrides) {
  absl::StatusOr<v1::Job> dev = ParseAndExpand(kRecipes, "r.yaml", "1");
  ASSERT_TRUE(dev.ok()) << dev.status();
  EXPECT_THAT(ArgvOf(*dev), ElementsAre("build", "ubuntu:20.04", "v2.0.0"));

  ExpandOptions o;
  o.axes = {{"recipe", {"v2.0.1"}}};
  absl::StatusOr<v1::Job> v2 = ParseAndExpand(kRecipes, "r.yaml", "1", o);
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_THAT(ArgvOf(*v2), ElementsAre("build", "ubuntu:22.04", "v2.2.0"));
  EXPECT_EQ(v2->params().at("pytorch_tag@recipe=v2.0.1"), "v2.2.0");  // the job shows them

  // The submitter's value wins over the file's per-cell default; theirs per cell too.
  o.params = {{"sys", "ubuntu:22.04-custom"}, {"pytorch_tag@recipe=v2.0.1", "v2.2.1"}};
  absl::StatusOr<v1::Job> mine = ParseAndExpand(kRecipes, "r.yaml", "1", o);
  ASSERT_TRUE(mine.ok()) << mine.status();
  EXPECT_THAT(ArgvOf(*mine), ElementsAre("build", "ubuntu:22.04-custom", "v2.2.1"));
}

TEST(CellValuesTest, BadPerCellDefaultsAreRefusedWhereTheyAre) {
  auto error = [](const std::string& params) {
    absl::StatusOr<v1::Job> job = ParseAndExpand(
        absl::StrCat("name: r\nmatrix: {recipe: [a]}\nparams:\n", params,
                     "stages: [{name: s, exec: [x]}]\n"),
        "r.yaml", "1");
    return job.ok() ? std::string("expanded") : std::string(job.status().message());
  };
  EXPECT_THAT(error("  tag@recipe=b: x\n  tag: y\n"),
              HasSubstr("r.yaml:4:3: params.tag@recipe=b: per-cell default of 'tag', which is not "
                        "declared above it in 'params'"));
  EXPECT_THAT(error("  tag: y\n  tag@arch=b: x\n"), HasSubstr("'arch' is not a matrix axis"));
  EXPECT_THAT(error("  tag: y\n  tag@recipe: x\n"),
              HasSubstr("'tag@recipe' is neither a param name nor NAME@AXIS=VALUE"));
  EXPECT_EQ(error("  tag: y\n  tag@recipe=b: x\n"), "expanded");
}

}  // namespace
}  // namespace musafarm::pipeline
