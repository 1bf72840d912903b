// The pipeline's `inputs:` (issue 17, item 1), through the public interface:
// what DeclaredOptions hands the CLI, and the errors ParseAndExpand gives.
#include "pipeline/inputs.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pipeline/spec.h"

namespace musafarm::pipeline {
namespace {

using ::testing::HasSubstr;

std::string Pipeline(const std::string& inputs, const std::string& context = "input:src") {
  return absl::StrCat("name: p\n", inputs, R"(stages:
  - name: image
    docker_build:
      context: ")", context, R"("
      dockerfile: docker/Dockerfile
      tags: [x:1]
)");
}

std::string ErrorOf(const std::string& yaml) {
  absl::StatusOr<v1::Job> job = ParseAndExpand(yaml, "p.yaml", "1");
  if (job.ok()) return "parsed";
  return std::string(job.status().message());
}

TEST(InputsTest, DeclaredInputsReachTheCliWithTheirPathAndIgnoreFile) {
  absl::StatusOr<PipelineOptions> declared = DeclaredOptions(Pipeline(R"(inputs:
  src: {path: ., ignore: .dockerignore}
  dockerfiles: {path: ../dockerfiles, ignore: ""}
  other:
    path: sub/dir
)"), "pipelines/p.yaml");
  ASSERT_TRUE(declared.ok()) << declared.status();
  ASSERT_EQ(declared->inputs.size(), 3u);
  EXPECT_EQ(declared->inputs[0].name, "src");
  EXPECT_EQ(declared->inputs[0].path, ".");
  EXPECT_EQ(declared->inputs[0].ignore, ".dockerignore");
  EXPECT_TRUE(declared->inputs[0].ignore_given);
  EXPECT_EQ(declared->inputs[0].where, "pipelines/p.yaml:3:3: inputs.src");
  EXPECT_EQ(declared->inputs[1].path, "../dockerfiles");
  EXPECT_EQ(declared->inputs[1].ignore, "");
  EXPECT_EQ(declared->inputs[2].path, "sub/dir");
  EXPECT_EQ(declared->inputs[2].ignore, ".dockerignore");  // the default, which may be absent
  EXPECT_FALSE(declared->inputs[2].ignore_given);
}

TEST(InputsTest, GitAndJoinInputs) {
  absl::StatusOr<PipelineOptions> declared = DeclaredOptions(Pipeline(R"(params: {tag: v1}
inputs:
  dockerfiles: {path: /srv/dockerfiles}
  torch_musa: {git: "git://127.0.0.1:9418/torch_musa", ref: "${tag}"}
  src:
    join: {.: dockerfiles, torch_musa: torch_musa}
)"), "p.yaml");
  ASSERT_TRUE(declared.ok()) << declared.status();
  ASSERT_EQ(declared->inputs.size(), 3u);
  EXPECT_EQ(declared->inputs[0].path, "/srv/dockerfiles");  // absolute: taken as it is
  EXPECT_EQ(declared->inputs[1].git, "git://127.0.0.1:9418/torch_musa");
  EXPECT_EQ(declared->inputs[1].ref, "${tag}");  // substituted by the CLI, from the job's params
  using Part = std::pair<std::string, std::string>;
  EXPECT_EQ(declared->inputs[2].join,
            (std::vector<Part>{{".", "dockerfiles"}, {"torch_musa", "torch_musa"}}));
}

TEST(InputsTest, AStageNamesADeclaredInput) {
  absl::StatusOr<v1::Job> job =
      ParseAndExpand(Pipeline("inputs:\n  src: {path: .}\n"), "p.yaml", "1");
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::DockerBuildStage& build = job->tasks(0).spec().run().docker_build();
  EXPECT_EQ(build.context_input(), "src");
  EXPECT_EQ(build.dockerfile(), "docker/Dockerfile");
}

TEST(InputsTest, AnUnknownInputIsAnErrorAtTheContextListingTheDeclaredOnes) {
  EXPECT_EQ(ErrorOf(Pipeline("inputs:\n  src: {path: .}\n  docs: {path: ../docs}\n",
                             "input:sorce")),
            "p.yaml:8:16: stages[0].docker_build.context: unknown input 'sorce' (inputs are: "
            "src, docs)");
  // Also when a param names it.
  EXPECT_THAT(ErrorOf(absl::StrCat("params: {which: nope}\n",
                                   Pipeline("inputs:\n  src: {path: .}\n", "input:${which}"))),
              HasSubstr("unknown input 'nope' (inputs are: src)"));
  // No `inputs:`: the submitter's --context names them, which the coordinator checks.
  EXPECT_EQ(ErrorOf(Pipeline("", "input:anything")), "parsed");
}

TEST(InputsTest, BadDeclarationsNameTheFileTheInputAndWhatIsWrong) {
  EXPECT_EQ(ErrorOf(Pipeline("inputs:\n  src: {ignore: .dockerignore}\n")),
            "p.yaml:3:3: inputs.src: missing 'path', 'git' or 'join': an input is {path: DIR, "
            "ignore: FILE}, {git: URL, ref: REF} or {join: {.: INPUT, DIR: INPUT}}; path is "
            "relative to the pipeline file's directory");
  EXPECT_THAT(ErrorOf(Pipeline("inputs:\n  src: {path: ~/torch_musa}\n")),
              HasSubstr("p.yaml:3:15: inputs.src.path: '~/torch_musa': '~' is not expanded"));
  EXPECT_THAT(ErrorOf(Pipeline("inputs:\n  src: {path: \"\"}\n")),
              HasSubstr("inputs.src.path: must not be empty"));
  EXPECT_THAT(ErrorOf(Pipeline("inputs:\n  src: {path: ., ignore: ../.dockerignore}\n")),
              HasSubstr("p.yaml:3:26: inputs.src.ignore: '../.dockerignore' escapes input 'src'"));
  EXPECT_THAT(ErrorOf(Pipeline("inputs:\n  src: {path: ., ignore: /etc/ignore}\n")),
              HasSubstr("escapes input 'src'"));
  EXPECT_THAT(ErrorOf(Pipeline("inputs:\n  src: {path: ., exclude: x}\n")),
              HasSubstr("inputs.src.exclude: unknown field 'exclude'"));
  EXPECT_THAT(ErrorOf(Pipeline("inputs:\n  \"-bad\": {path: .}\n")),
              HasSubstr("p.yaml:3:3: inputs.-bad: input name '-bad' must be"));
  EXPECT_THAT(ErrorOf(Pipeline("inputs:\n  src: .\n")),
              HasSubstr("inputs.src: expected a mapping {path: DIR, ignore: FILE}, {git: URL, ref: "
                        "REF} or {join: {.: INPUT, DIR: INPUT}}, got a string"));
  EXPECT_THAT(ErrorOf(Pipeline("inputs:\n  src: {path: ., git: x}\n")),
              HasSubstr("inputs.src: has path and git; an input is one of"));
  EXPECT_THAT(ErrorOf(Pipeline("inputs:\n  src: {git: x, ignore: y}\n")),
              HasSubstr("inputs.src: 'ignore' is for a 'path' input"));
  EXPECT_THAT(ErrorOf(Pipeline("inputs:\n  src: {path: ., ref: v1}\n")),
              HasSubstr("inputs.src: 'ref' is for a 'git' input"));
  EXPECT_THAT(ErrorOf(Pipeline("inputs:\n  a: {path: .}\n  src: {join: {.: a, b/c: a}}\n")),
              HasSubstr("p.yaml:4:22: inputs.src.join.b/c: 'b/c' must be '.' (the input's top "
                        "directory) or one directory name"));
  EXPECT_THAT(ErrorOf(Pipeline("inputs:\n  a: {path: .}\n  src: {join: {.: a, x: b}}\n")),
              HasSubstr("p.yaml:4:3: inputs.src.join.x: unknown input 'b' (a join is made of "
                        "path and git inputs: a, src)"));
  EXPECT_THAT(ErrorOf(Pipeline("inputs:\n  a: {join: {.: src}}\n  src: {join: {.: a}}\n")),
              HasSubstr("inputs.a.join..: input 'src' is a join itself"));
  EXPECT_THAT(ErrorOf(Pipeline("inputs: [src]\n")),
              HasSubstr("inputs: expected a mapping of input names, got a list"));
}

}  // namespace
}  // namespace musafarm::pipeline
