// Which tree of a declared input each cell builds (issue 18, per-cell git
// refs): through ParseAndExpand, the uses it reports and the context_input of
// each cell's docker_build.
#include "pipeline/input_uses.h"

#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pipeline/spec.h"

namespace musafarm::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// Two recipes, the second pinning another torch_musa tag, as
// pipelines/torch_musa.yaml does; a release stage that needs only the
// Dockerfiles.
constexpr char kPipeline[] = R"(name: p
matrix:
  recipe: [old, new]
  python: ["3.9", "3.10"]
params:
  tag: v1
  tag@recipe=new: v2
  repo: git://127.0.0.1/torch_musa
inputs:
  dockerfiles: {path: ../dockerfiles}
  torch_musa: {git: "${repo}", ref: "${tag}"}
  context: {join: {.: dockerfiles, torch_musa: torch_musa}}
stages:
  - name: dev
    docker_build: {context: input:context, tags: ["d:${python}"]}
  - name: release
    docker_build: {context: input:dockerfiles, tags: ["r:${python}"]}
)";

struct Expanded {
  std::vector<InputUse> uses;
  std::map<std::string, std::string> context;  // task id -> context_input
};

Expanded Expand(const ExpandOptions& o, const std::string& yaml = kPipeline) {
  Expanded e;
  absl::StatusOr<v1::Job> job = ParseAndExpand(yaml, "p.yaml", "1", o, &e.uses);
  EXPECT_TRUE(job.ok()) << job.status();
  if (!job.ok()) return e;
  for (const v1::Task& t : job->tasks()) {
    e.context[t.id()] = t.spec().run().docker_build().context_input();
  }
  return e;
}

std::vector<std::string> Names(const std::vector<InputUse>& uses) {
  std::vector<std::string> names;
  for (const InputUse& u : uses) names.push_back(u.name);
  return names;
}

TEST(InputUsesTest, ACellWhoseRecipePinsAnotherTagBuildsItsOwnTree) {
  const Expanded e = Expand({});
  EXPECT_THAT(Names(e.uses), ElementsAre("dockerfiles", "torch_musa", "context",
                                         "torch_musa@recipe=new", "context@recipe=new"));
  EXPECT_EQ(e.uses[1].git, "git://127.0.0.1/torch_musa");
  EXPECT_EQ(e.uses[1].ref, "v1");
  EXPECT_EQ(e.uses[3].ref, "v2");
  EXPECT_EQ(e.uses[3].declared, "torch_musa");
  EXPECT_THAT(e.uses[2].join, ElementsAre(Pair(".", "dockerfiles"), Pair("torch_musa", "torch_musa")));
  EXPECT_THAT(e.uses[4].join,
              ElementsAre(Pair(".", "dockerfiles"), Pair("torch_musa", "torch_musa@recipe=new")));
  EXPECT_EQ(e.context.at("1/old-3.9/dev"), "context");
  EXPECT_EQ(e.context.at("1/new-3.10/dev"), "context@recipe=new");
  EXPECT_EQ(e.context.at("1/new-3.10/release"), "dockerfiles");
}

TEST(InputUsesTest, OnlyWhatTheCellsOfTheJobBuildIsUsed) {
  ExpandOptions only_new;
  only_new.axes = {{"recipe", {"new"}}};
  EXPECT_THAT(Names(Expand(only_new).uses),
              ElementsAre("dockerfiles", "torch_musa@recipe=new", "context@recipe=new"));
  ExpandOptions given;
  given.params = {{"tag", "v3"}};  // the submitter's value wins over the file's per-cell one
  const Expanded e = Expand(given);
  EXPECT_THAT(Names(e.uses), ElementsAre("dockerfiles", "torch_musa", "context"));
  EXPECT_EQ(e.uses[1].ref, "v3");
  EXPECT_EQ(e.context.at("1/new-3.9/dev"), "context");
  // The submitter's own per-cell value; one equal to the job-wide value
  // builds the job-wide tree.
  ExpandOptions per_cell;
  per_cell.params = {{"tag@python=3.10", "v4"}, {"tag@python=3.9", "v1"}};
  per_cell.axes = {{"recipe", {"old"}}};
  const Expanded c = Expand(per_cell);
  EXPECT_THAT(Names(c.uses), ElementsAre("dockerfiles", "torch_musa", "context",
                                         "torch_musa@python=3.10", "context@python=3.10"));
  EXPECT_EQ(c.uses[3].ref, "v4");
  EXPECT_EQ(c.context.at("1/old-3.10/dev"), "context@python=3.10");
}

TEST(InputUsesTest, AReplacedInputIsOneTreeForEveryCell) {
  ExpandOptions o;
  o.replaced_inputs = {"torch_musa"};
  const Expanded e = Expand(o);
  EXPECT_THAT(Names(e.uses), ElementsAre("dockerfiles", "torch_musa", "context"));
  EXPECT_EQ(e.context.at("1/new-3.9/dev"), "context");
  o.replaced_inputs = {"context"};
  EXPECT_THAT(Names(Expand(o).uses), ElementsAre("context", "dockerfiles"));
}

TEST(InputUsesTest, AGitRefNamingNoParamIsAnErrorAtTheInput) {
  std::string yaml = kPipeline;
  yaml.replace(yaml.find("${tag}"), 6, "${python}");
  absl::StatusOr<v1::Job> job = ParseAndExpand(yaml, "p.yaml", "1", ExpandOptions{});
  ASSERT_FALSE(job.ok());
  EXPECT_THAT(std::string(job.status().message()),
              HasSubstr("p.yaml:11:3: inputs.torch_musa.ref: unknown param 'python' (only params "
                        "are substituted here)"));
}

TEST(InputUsesTest, UseNamesAsASubmissionCarriesThem) {
  EXPECT_TRUE(ValidateInputUseName("torch_musa").ok());
  EXPECT_TRUE(ValidateInputUseName("torch_musa@recipe=v2.0.1").ok());
  EXPECT_TRUE(ValidateInputUseName("context@arch=qy2@recipe=v2.0.1").ok());
  EXPECT_FALSE(ValidateInputUseName("torch_musa@recipe").ok());
  EXPECT_FALSE(ValidateInputUseName("torch_musa@recipe=a b").ok());
  EXPECT_FALSE(ValidateInputUseName("@recipe=x").ok());
  EXPECT_FALSE(ValidateInputUseName("t@r=" + std::string(300, 'x')).ok());
  EXPECT_EQ(DeclaredInputName("context@recipe=v2.0.1"), "context");
  EXPECT_EQ(DeclaredInputName("context"), "context");
}

}  // namespace
}  // namespace musafarm::pipeline
