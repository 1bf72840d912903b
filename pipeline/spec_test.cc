#include "pipeline/spec.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr absl::string_view kFile = "pipes/p.yaml";

absl::StatusOr<v1::Job> Parse(absl::string_view yaml) { return ParseAndExpand(yaml, kFile, "7"); }

std::vector<std::string> Ids(const v1::Job& job) {
  std::vector<std::string> ids;
  for (const v1::Task& t : job.tasks()) ids.push_back(t.id());
  return ids;
}

// The task with id `id`; a failure and an empty task when there is none.
const v1::Task& Find(const v1::Job& job, absl::string_view id) {
  for (const v1::Task& t : job.tasks()) {
    if (t.id() == id) return t;
  }
  ADD_FAILURE() << "no task " << id;
  return v1::Task::default_instance();
}

std::vector<std::string> Argv(const v1::Task& t) {
  return {t.spec().run().exec().argv().begin(), t.spec().run().exec().argv().end()};
}

std::vector<std::string> Needs(const v1::Task& t) {
  return {t.spec().needs().begin(), t.spec().needs().end()};
}

std::map<std::string, std::string> Env(const v1::Task& t) {
  return {t.spec().run().env().begin(), t.spec().run().env().end()};
}

// The error message as a std::string, which gMock's string matchers need.
std::string Message(const absl::StatusOr<v1::Job>& r) { return std::string(r.status().message()); }

// Checks that `r` is InvalidArgument "pipes/p.yaml:LINE:COL: FIELD: ..." with
// the given line, field path and message fragment (and column, unless -1).
::testing::AssertionResult IsError(const absl::StatusOr<v1::Job>& r, int line,
                                   absl::string_view field, absl::string_view what, int col = -1) {
  if (r.ok()) return ::testing::AssertionFailure() << "parsed fine; wanted an error";
  const absl::Status& s = r.status();
  if (s.code() != absl::StatusCode::kInvalidArgument) {
    return ::testing::AssertionFailure() << "code is not InvalidArgument: " << s;
  }
  const std::string msg(s.message());
  std::vector<std::string> parts = absl::StrSplit(msg, absl::MaxSplits(": ", 2));
  std::vector<std::string> where = absl::StrSplit(parts[0], ':');
  int got_line = 0;
  int got_col = 0;
  if (parts.size() != 3 || where.size() != 3 || where[0] != kFile ||
      !absl::SimpleAtoi(where[1], &got_line) || !absl::SimpleAtoi(where[2], &got_col)) {
    return ::testing::AssertionFailure() << "not 'FILE:LINE:COL: FIELD: what': " << msg;
  }
  if (got_line != line) {
    return ::testing::AssertionFailure() << "line " << got_line << ", want " << line << ": " << msg;
  }
  if (col >= 0 && got_col != col) {
    return ::testing::AssertionFailure() << "column " << got_col << ", want " << col << ": " << msg;
  }
  if (parts[1] != field) {
    return ::testing::AssertionFailure()
           << "field '" << parts[1] << "', want '" << field << "': " << msg;
  }
  if (parts[2].find(std::string(what)) == std::string::npos) {
    return ::testing::AssertionFailure() << "message lacks '" << what << "': " << msg;
  }
  return ::testing::AssertionSuccess() << msg;
}

// The torch_musa layout: dev cells build base -> dev -> test, release cells
// release -> test, and `test` picks its dependency through ${variant}.
constexpr absl::string_view kTorchMusa = R"yaml(name: torch-musa
matrix:
  variant: [dev, release]
  python: ["3.8", "3.9", "3.10"]
env: {GLOBAL: "g"}
stages:
  - name: base
    when: {variant: dev}
    exec: ["sh", "-c", "build-base ${python}"]
  - name: dev
    when: {variant: dev}
    needs: [base]
    exec: [make, dev]
  - name: release
    when: {variant: release}
    exec: [make, release]
  - name: test
    needs: ["${variant}"]
    labels: [docker, "gpu=mthreads"]
    exec: [pytest, "-k", "py${matrix.python}"]
    env: {PY: "${python}"}
    timeout: 30m
    retries: 1
)yaml";

TEST(ParseAndExpandTest, TorchMusaMatrixExpandsToFifteenTasksInTopologicalOrder) {
  absl::StatusOr<v1::Job> job = Parse(kTorchMusa);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->id(), "7");
  EXPECT_EQ(job->name(), "torch-musa");
  EXPECT_EQ(job->pipeline_file(), kFile);
  EXPECT_THAT(job->axes(), ElementsAre("variant", "python"));
  EXPECT_THAT(Ids(*job),
              ElementsAre("7/dev-3.8/base", "7/dev-3.8/dev", "7/dev-3.8/test", "7/dev-3.9/base",
                          "7/dev-3.9/dev", "7/dev-3.9/test", "7/dev-3.10/base", "7/dev-3.10/dev",
                          "7/dev-3.10/test", "7/release-3.8/release", "7/release-3.8/test",
                          "7/release-3.9/release", "7/release-3.9/test", "7/release-3.10/release",
                          "7/release-3.10/test"));

  const v1::Task& dev_test = Find(*job, "7/dev-3.9/test");
  EXPECT_THAT(Needs(dev_test), ElementsAre("7/dev-3.9/dev"));
  EXPECT_THAT(Needs(Find(*job, "7/dev-3.9/dev")), ElementsAre("7/dev-3.9/base"));
  EXPECT_THAT(Needs(Find(*job, "7/dev-3.9/base")), IsEmpty());
  EXPECT_THAT(Needs(Find(*job, "7/release-3.10/test")), ElementsAre("7/release-3.10/release"));
  EXPECT_THAT(Needs(Find(*job, "7/release-3.10/release")), IsEmpty());

  EXPECT_EQ(dev_test.job_id(), "7");
  EXPECT_EQ(dev_test.state(), v1::TASK_STATE_PENDING);
  EXPECT_EQ(dev_test.spec().stage(), "test");
  EXPECT_EQ(dev_test.spec().display_name(), "test (dev, 3.9)");
  ASSERT_EQ(dev_test.spec().cell_size(), 2);
  EXPECT_EQ(dev_test.spec().cell(0).axis(), "variant");
  EXPECT_EQ(dev_test.spec().cell(0).value(), "dev");
  EXPECT_EQ(dev_test.spec().cell(1).axis(), "python");
  EXPECT_EQ(dev_test.spec().cell(1).value(), "3.9");
  EXPECT_THAT(Argv(dev_test), ElementsAre("pytest", "-k", "py3.9"));
  EXPECT_FALSE(dev_test.spec().run().exec().shell());
  EXPECT_THAT(Env(dev_test), UnorderedElementsAre(Pair("GLOBAL", "g"), Pair("PY", "3.9")));
  EXPECT_EQ(dev_test.spec().run().timeout_seconds(), 1800);
  EXPECT_EQ(dev_test.spec().run().retries(), 1);
  EXPECT_THAT(dev_test.spec().run().labels(), ElementsAre("docker", "gpu=mthreads"));
  EXPECT_THAT(Argv(Find(*job, "7/dev-3.10/base")), ElementsAre("sh", "-c", "build-base 3.10"));

  // Every dependency comes before its dependant.
  std::map<std::string, int> pos;
  for (const v1::Task& t : job->tasks()) {
    for (const std::string& need : t.spec().needs()) {
      EXPECT_TRUE(pos.count(need)) << t.id() << " before its dependency " << need;
    }
    pos[t.id()] = static_cast<int>(pos.size());
  }
}

TEST(ParseAndExpandTest, DependencyWrittenLaterStillComesFirst) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(stages:
  - name: test
    needs: [build]
    exec: [t]
  - name: lint
    exec: [l]
  - name: build
    exec: [b]
  - name: docs
    exec: [d]
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  // File order wherever the dependencies allow it: test waits for build only.
  EXPECT_THAT(Ids(*job), ElementsAre("7/lint", "7/build", "7/test", "7/docs"));
}

TEST(ParseAndExpandTest, NoMatrixGivesOneTaskPerStage) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(stages:
  - name: build
    shell: "make -j8 && make install"
  - name: check
    needs: [build]
    exec: [make, check]
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->axes(), IsEmpty());
  EXPECT_THAT(Ids(*job), ElementsAre("7/build", "7/check"));
  const v1::Task& build = job->tasks(0);
  EXPECT_EQ(build.spec().display_name(), "build");
  EXPECT_THAT(build.spec().cell(), IsEmpty());
  EXPECT_THAT(Argv(build), ElementsAre("make -j8 && make install"));
  EXPECT_TRUE(build.spec().run().exec().shell());
  EXPECT_THAT(Needs(job->tasks(1)), ElementsAre("7/build"));
}

TEST(ParseAndExpandTest, Defaults) {
  absl::StatusOr<v1::Job> job = Parse("stages:\n  - {name: a, exec: [x]}\n");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->name(), "p");  // basename of pipes/p.yaml without extension
  ASSERT_EQ(job->tasks_size(), 1);
  const v1::StageSpec& run = job->tasks(0).spec().run();
  EXPECT_EQ(run.timeout_seconds(), 0);
  EXPECT_EQ(run.retries(), 0);
  EXPECT_THAT(run.env(), IsEmpty());
  EXPECT_THAT(run.labels(), IsEmpty());
  EXPECT_FALSE(run.exec().shell());
  EXPECT_THAT(job->tasks(0).spec().needs(), IsEmpty());
}

TEST(ParseAndExpandTest, NameOverrideWinsOverNameField) {
  constexpr absl::string_view kYaml = "name: from-file\nstages: [{name: a, exec: [x]}]\n";
  absl::StatusOr<v1::Job> named = ParseAndExpand(kYaml, kFile, "1");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->name(), "from-file");
  absl::StatusOr<v1::Job> overridden = ParseAndExpand(kYaml, kFile, "1", "from-cli");
  ASSERT_TRUE(overridden.ok()) << overridden.status();
  EXPECT_EQ(overridden->name(), "from-cli");
}

TEST(ParseAndExpandTest, TimeoutAndRetriesForms) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(stages:
  - {name: a, exec: [x], timeout: 90s}
  - {name: b, exec: [x], timeout: 1h30m, retries: 3}
  - {name: c, exec: [x], timeout: 45, retries: 0}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->tasks(0).spec().run().timeout_seconds(), 90);
  EXPECT_EQ(job->tasks(1).spec().run().timeout_seconds(), 5400);
  EXPECT_EQ(job->tasks(1).spec().run().retries(), 3);
  EXPECT_EQ(job->tasks(2).spec().run().timeout_seconds(), 45);
  EXPECT_EQ(job->tasks(2).spec().run().retries(), 0);
}

TEST(ParseAndExpandTest, SubstitutesArgvShellEnvLabelsAndNeeds) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  gpu: [s4000, s80]
  os: ["ubuntu:22.04"]
env: {TARGET: "${gpu}-${os}", KEEP: plain}
stages:
  - name: prep-s4000
    exec: [true]
  - name: prep-s80
    exec: [true]
  - name: run
    needs: ["prep-${gpu}"]
    labels: ["gpu=${matrix.gpu}", docker]
    shell: "echo ${gpu} on ${os}"
    env: {KEEP: "stage-${gpu}"}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::Task& run = Find(*job, "7/s80-ubuntu:22.04/run");
  EXPECT_THAT(Needs(run), ElementsAre("7/s80-ubuntu:22.04/prep-s80"));
  EXPECT_THAT(run.spec().run().labels(), ElementsAre("gpu=s80", "docker"));
  EXPECT_THAT(Argv(run), ElementsAre("echo s80 on ubuntu:22.04"));
  EXPECT_TRUE(run.spec().run().exec().shell());
  // Pipeline env is substituted too; the stage overrides KEEP and keeps TARGET.
  EXPECT_THAT(Env(run),
              UnorderedElementsAre(Pair("TARGET", "s80-ubuntu:22.04"), Pair("KEEP", "stage-s80")));
  EXPECT_THAT(Env(Find(*job, "7/s80-ubuntu:22.04/prep-s80")),
              UnorderedElementsAre(Pair("TARGET", "s80-ubuntu:22.04"), Pair("KEEP", "plain")));
}

TEST(ParseAndExpandTest, DollarDollarBraceIsALiteralDollarBrace) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  py: ["3.10"]
stages:
  - name: a
    shell: "echo $${HOME} ${py} $$ $PATH $${py}"
    env: {X: "$${py}"}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Argv(job->tasks(0)), ElementsAre("echo ${HOME} 3.10 $$ $PATH ${py}"));
  EXPECT_THAT(Env(job->tasks(0)), UnorderedElementsAre(Pair("X", "${py}")));
}

TEST(ParseAndExpandTest, WhenTakesAValueOrAList) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8", "3.9", "3.10"]
stages:
  - name: old
    when: {python: ["3.8", "3.9"], variant: dev}
    exec: [x]
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/dev-3.8/old", "7/dev-3.9/old"));
}

TEST(ParseAndExpandTest, ExcludeRemovesEveryCellMatchingAllGivenValues) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8", "3.9"]
  exclude:
    - {variant: release, python: "3.8"}
    - {python: "3.9", variant: dev}
stages:
  - {name: a, exec: [x]}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/dev-3.8/a", "7/release-3.9/a"));
}

TEST(ParseAndExpandTest, PartialExcludeRemovesAllCellsWithThatValue) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8", "3.9"]
  exclude: [{python: "3.8"}]
stages:
  - {name: a, exec: [x]}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/dev-3.9/a", "7/release-3.9/a"));
}

TEST(ParseAndExpandTest, IncludeMatchingCellsAddsVariables) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8", "3.10"]
  include:
    - {python: "3.10", torch: "2.2"}
    - {runner: big}
stages:
  - name: a
    when: {python: "3.10"}
    exec: [build, "${torch}", "${runner}"]
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  // No new cells: both entries matched existing ones.
  EXPECT_THAT(Ids(*job), ElementsAre("7/dev-3.10/a", "7/release-3.10/a"));
  EXPECT_THAT(Argv(job->tasks(0)), ElementsAre("build", "2.2", "big"));
  EXPECT_THAT(Argv(job->tasks(1)), ElementsAre("build", "2.2", "big"));
}

TEST(ParseAndExpandTest, IncludeVariableExistsOnlyInMatchingCells) {
  auto job = Parse(R"yaml(matrix:
  python: ["3.8", "3.10"]
  include:
    - {python: "3.10", torch: "2.2"}
stages:
  - name: a
    exec: [build, "${torch}"]
)yaml");
  // The 3.8 cell has no `torch`; the error names the cell and what is known there.
  EXPECT_TRUE(IsError(job, 7, "stages[0].exec[1]", "unknown variable 'torch' in cell (3.8)"));
  EXPECT_THAT(Message(job), HasSubstr("known: python;"));
}

TEST(ParseAndExpandTest, IncludeNotMatchingAddsANewCellAfterTheProduct) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8"]
  exclude: [{variant: release}]
  include:
    - {variant: dev, python: "3.11", extra: "yes"}
    - {variant: release, python: "3.8"}
stages:
  - name: a
    when: {python: "3.11"}
    exec: [x, "${extra}"]
  - name: b
    exec: [y]
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  // Product cells first, then included ones in include order; an include may
  // bring back an excluded cell.
  EXPECT_THAT(Ids(*job),
              ElementsAre("7/dev-3.8/b", "7/dev-3.11/a", "7/dev-3.11/b", "7/release-3.8/b"));
  EXPECT_THAT(Argv(Find(*job, "7/dev-3.11/a")), ElementsAre("x", "yes"));
  EXPECT_EQ(Find(*job, "7/dev-3.11/b").spec().display_name(), "b (dev, 3.11)");
}

TEST(ParseAndExpandTest, RepeatedNeedIsListedOnce) {
  absl::StatusOr<v1::Job> job = Parse(R"yaml(matrix:
  v: [a]
stages:
  - {name: a, exec: [x]}
  - {name: b, exec: [x], needs: [a, "${v}"]}
)yaml");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Needs(job->tasks(1)), ElementsAre("7/a/a"));
}

TEST(ParseAndExpandTest, UnquotedNumbersKeepTheirText) {
  // yaml-cpp keeps scalars verbatim, so 3.10 stays "3.10", not 3.1.
  absl::StatusOr<v1::Job> job = Parse("matrix: {python: [3.10]}\nstages: [{name: a, exec: [x]}]\n");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/3.10/a"));
}

// ---- Errors. Each names the file, the line (and where useful the column) and
// ---- the field path.

TEST(ParseAndExpandErrorTest, YamlSyntax) {
  constexpr absl::string_view kYaml = "stages:\n  - name: a\n    exec: [x\n";
  EXPECT_TRUE(IsError(Parse(kYaml), 4, "yaml", "syntax error"));
  EXPECT_TRUE(IsError(Parse("name: a: b\n"), 1, "yaml", "syntax error"));
}

TEST(ParseAndExpandErrorTest, UnquotedVariableInFlowListGetsAHint) {
  auto r = Parse("stages:\n  - name: a\n    exec: [echo ${x}]\n");
  EXPECT_TRUE(IsError(r, 3, "yaml", "quote strings that hold '${...}'"));
}

TEST(ParseAndExpandErrorTest, TopLevelMustBeAMapping) {
  EXPECT_TRUE(IsError(Parse("- name: a\n"), 1, "pipeline", "expected a mapping"));
  EXPECT_TRUE(IsError(Parse(""), 1, "pipeline", "empty"));
}

TEST(ParseAndExpandErrorTest, UnknownTopLevelField) {
  auto r = Parse("stages: [{name: a, exec: [x]}]\nmatrixx: {}\n");
  EXPECT_TRUE(
      IsError(r, 2, "matrixx", "unknown field 'matrixx' (allowed: name, matrix, env, stages)", 1));
}

TEST(ParseAndExpandErrorTest, UnknownStageField) {
  constexpr absl::string_view kYaml = R"yaml(stages:
  - name: a
    exec: [x]
    timout: 5
)yaml";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 4, "stages[0].timout",
              "unknown field 'timout' (allowed: name, when, needs, labels, exec, shell, env, "
              "timeout, retries)",
              5));
}

TEST(ParseAndExpandErrorTest, DuplicateKey) {
  constexpr absl::string_view kYaml = "stages:\n  - name: a\n    exec: [x]\n    exec: [y]\n";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 4, "stages[0].exec", "duplicate key 'exec' (first given on line 3)"));
}

TEST(ParseAndExpandErrorTest, ExecMustBeAList) {
  constexpr absl::string_view kYaml = "stages:\n  - name: a\n    exec: make all\n";
  EXPECT_TRUE(IsError(Parse(kYaml), 3, "stages[0].exec", "expected an argv list (use 'shell'", 11));
}

TEST(ParseAndExpandErrorTest, WrongTypes) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x], retries: x}\n"), 2,
                      "stages[0].retries", "expected a whole number, got 'x'"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x], timeout: soon}\n"), 2,
                      "stages[0].timeout", "'soon' is not a duration"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x], needs: a}\n"), 2, "stages[0].needs",
                      "expected a list of stage names, got a string"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x], env: [A]}\n"), 2, "stages[0].env",
                      "expected a mapping, got a list"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x, [y]]}\n"), 2, "stages[0].exec[1]",
                      "expected a string, got a list"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x], labels: {a: b}}\n"), 2,
                      "stages[0].labels", "expected a list of labels, got a mapping"));
  EXPECT_TRUE(
      IsError(Parse("stages:\n  - name: a\n    exec:\n"), 3, "stages[0].exec", "got nothing"));
  EXPECT_TRUE(IsError(Parse("matrix: {python: \"3.8\"}\nstages: [{name: a, exec: [x]}]\n"), 1,
                      "matrix.python", "expected a list of values, got a string"));
}

TEST(ParseAndExpandErrorTest, BadEnvName) {
  auto r = Parse("env: {\"A B\": x}\nstages: [{name: a, exec: [x]}]\n");
  EXPECT_TRUE(IsError(r, 1, "env.A B", "not a valid environment variable name"));
}

TEST(ParseAndExpandErrorTest, MissingStages) {
  EXPECT_TRUE(IsError(Parse("name: x\n"), 1, "stages", "missing"));
}

TEST(ParseAndExpandErrorTest, EmptyStages) {
  EXPECT_TRUE(IsError(Parse("name: x\nstages: []\n"), 2, "stages", "at least one stage"));
}

TEST(ParseAndExpandErrorTest, DuplicateStageName) {
  constexpr absl::string_view kYaml = R"yaml(stages:
  - name: a
    exec: [x]
  - name: b
    exec: [x]
  - name: a
    exec: [y]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 6, "stages[2].name",
                      "duplicate stage name 'a' (first defined on line 2)"));
}

TEST(ParseAndExpandErrorTest, BadStageName) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: build step\n    exec: [x]\n"), 2, "stages[0].name",
                      "stage name 'build step'", 11));
  EXPECT_TRUE(
      IsError(Parse("stages:\n  - exec: [x]\n"), 2, "stages[0]", "missing required field 'name'"));
}

TEST(ParseAndExpandErrorTest, NeedsUnknownStage) {
  constexpr absl::string_view kYaml = R"yaml(stages:
  - name: base
    exec: [x]
  - name: dev
    exec: [x]
  - name: test
    needs: [base, dve]
    exec: [x]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 7, "stages[2].needs[1]",
                      "unknown stage 'dve' (stages are: base, dev, test)", 19));
}

TEST(ParseAndExpandErrorTest, NeedsUnknownStageThroughVariable) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
stages:
  - name: dev
    exec: [x]
  - name: test
    needs: ["${variant}"]
    exec: [x]
)yaml";
  auto r = Parse(kYaml);
  EXPECT_TRUE(IsError(r, 7, "stages[1].needs[0]", "unknown stage 'release'"));
  EXPECT_THAT(Message(r), HasSubstr("from '${variant}' in cell (release)"));
}

TEST(ParseAndExpandErrorTest, NeedsStageThatDoesNotRunInTheCell) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8"]
stages:
  - name: base
    when: {variant: dev}
    exec: [x]
  - name: test
    needs: [base]
    exec: [x]
)yaml";
  auto r = Parse(kYaml);
  EXPECT_TRUE(
      IsError(r, 9, "stages[1].needs[0]", "stage 'base' does not run in cell (release, 3.8)"));
  EXPECT_THAT(Message(r), HasSubstr("'when'"));
  EXPECT_THAT(Message(r), HasSubstr("${variant}"));
}

TEST(ParseAndExpandErrorTest, StageNeedsItself) {
  constexpr absl::string_view kYaml = "stages:\n  - name: a\n    needs: [a]\n    exec: [x]\n";
  EXPECT_TRUE(IsError(Parse(kYaml), 3, "stages[0].needs[0]", "stage 'a' needs itself"));
}

TEST(ParseAndExpandErrorTest, TwoStageCycle) {
  constexpr absl::string_view kYaml = R"yaml(stages:
  - name: a
    needs: [b]
    exec: [x]
  - name: b
    needs: [a]
    exec: [x]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 3, "stages[0].needs[0]", "dependency cycle: a -> b -> a"));
}

TEST(ParseAndExpandErrorTest, CycleBehindOtherStagesIsNamedFromItsFirstStage) {
  // `entry` leads into the cycle but is not on it; the message names only the
  // cycle, starting at its first stage in the file (c), at c's needs entry.
  constexpr absl::string_view kYaml = R"yaml(stages:
  - name: entry
    needs: [e]
    exec: [x]
  - name: ok
    exec: [x]
  - name: c
    needs: [ok, d]
    exec: [x]
  - name: d
    needs: [e]
    exec: [x]
  - name: e
    needs: [c]
    exec: [x]
)yaml";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 8, "stages[2].needs[1]", "dependency cycle: c -> d -> e -> c", 17));
}

TEST(ParseAndExpandErrorTest, CycleOnlyInSomeCellsNamesTheCell) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  v: [b, c]
stages:
  - name: a
    needs: ["${v}"]
    exec: [x]
  - name: b
    exec: [x]
  - name: c
    needs: [a]
    exec: [x]
)yaml";
  // In cell (b), a needs b: fine. In cell (c), a needs c, which needs a.
  EXPECT_TRUE(
      IsError(Parse(kYaml), 5, "stages[0].needs[0]", "dependency cycle: a -> c -> a in cell (c)"));
}

TEST(ParseAndExpandErrorTest, StageNeedsItselfThroughAVariable) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  v: [a, b]
stages:
  - name: a
    exec: [x]
  - name: b
    needs: ["${v}"]
    exec: [x]
)yaml";
  // In cell (a), b needs a: fine. In cell (b), b needs itself.
  EXPECT_TRUE(IsError(Parse(kYaml), 7, "stages[1].needs[0]",
                      "stage 'b' needs itself (from '${v}' in cell (b))"));
}

TEST(ParseAndExpandErrorTest, EmptyAxis) {
  constexpr absl::string_view kYaml =
      "matrix:\n  variant: [dev]\n  python: []\nstages: [{name: a, exec: [x]}]\n";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 3, "matrix.python", "has no values, so the matrix has no cells"));
}

TEST(ParseAndExpandErrorTest, EveryCellExcluded) {
  constexpr absl::string_view kYaml = R"yaml(stages: [{name: a, exec: [x]}]
matrix:
  variant: [dev, release]
  exclude: [{variant: dev}, {variant: release}]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 2, "matrix", "matrix has no cells"));
}

TEST(ParseAndExpandErrorTest, StageRunsInNoCell) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8", "3.9"]
  exclude: [{variant: release, python: "3.9"}]
stages:
  - name: a
    exec: [x]
  - name: b
    when: {variant: release, python: "3.9"}
    exec: [x]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 9, "stages[1].when",
                      "stage 'b' runs in no matrix cell: check its 'when'"));
}

TEST(ParseAndExpandErrorTest, WhenKeyIsNotAnAxis) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev]
stages:
  - name: a
    when: {varaint: dev}
    exec: [x]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 5, "stages[0].when.varaint",
                      "'varaint' is not a matrix axis (axes: variant)", 12));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, when: {v: x}, exec: [x]}\n"), 2,
                      "stages[0].when.v", "the pipeline has no matrix axes"));
}

TEST(ParseAndExpandErrorTest, WhenValueIsNotOnTheAxis) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  python: ["3.8", "3.9"]
stages:
  - name: a
    when: {python: ["3.9", "3.12"]}
    exec: [x]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 5, "stages[0].when.python[1]",
                      "'3.12' is not a value of axis 'python' (values: 3.8, 3.9)"));
}

TEST(ParseAndExpandErrorTest, ExcludeKeyIsNotAnAxis) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
  exclude:
    - {variant: dev, pyhton: "3.8"}
stages: [{name: a, exec: [x]}]
)yaml";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 4, "matrix.exclude[0].pyhton", "'pyhton' is not a matrix axis"));
}

TEST(ParseAndExpandErrorTest, ExcludeValueIsNotOnTheAxis) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
  exclude:
    - {variant: relase}
stages: [{name: a, exec: [x]}]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 4, "matrix.exclude[0].variant",
                      "'relase' is not a value of axis 'variant' (values: dev, release)"));
}

TEST(ParseAndExpandErrorTest, IncludeNewCellMustGiveEveryAxis) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8"]
  include:
    - {python: "3.8", torch: "2.0"}
    - {python: "3.11", torch: "2.2"}
stages: [{name: a, exec: [x]}]
)yaml";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 6, "matrix.include[1]",
              "entry matches no matrix cell, so it would add a new cell, which needs a value "
              "for every axis (missing: variant)"));
}

TEST(ParseAndExpandErrorTest, BadCellValue) {
  EXPECT_TRUE(
      IsError(Parse("matrix:\n  os: [ubuntu, \"deb ian\"]\nstages: [{name: a, exec: [x]}]\n"), 2,
              "matrix.os[1]", "matrix value 'deb ian' may hold only", 16));
  constexpr absl::string_view kInclude = R"yaml(matrix:
  os: [ubuntu]
  include: [{os: "a/b"}]
stages: [{name: a, exec: [x]}]
)yaml";
  EXPECT_TRUE(IsError(Parse(kInclude), 3, "matrix.include[0].os", "matrix value 'a/b'"));
}

TEST(ParseAndExpandErrorTest, CellsWithTheSameTaskId) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  a: [x-y, x]
  b: [z, y-z]
stages: [{name: a, exec: [x]}]
)yaml";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 1, "matrix", "cells (x-y, z) and (x, y-z) have the same task id"));
}

TEST(ParseAndExpandErrorTest, BothExecAndShell) {
  constexpr absl::string_view kYaml = "stages:\n  - name: a\n    exec: [x]\n    shell: y\n";
  EXPECT_TRUE(IsError(Parse(kYaml), 4, "stages[0]", "has both 'exec' and 'shell'"));
}

TEST(ParseAndExpandErrorTest, NeitherExecNorShell) {
  constexpr absl::string_view kYaml = "stages:\n  - name: a\n    retries: 1\n";
  EXPECT_TRUE(IsError(Parse(kYaml), 2, "stages[0]", "needs 'exec' (an argv list) or 'shell'"));
}

TEST(ParseAndExpandErrorTest, EmptyExecAndEmptyShell) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    exec: []\n"), 3, "stages[0].exec",
                      "argv list is empty"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    shell: \" \"\n"), 3, "stages[0].shell",
                      "script is empty"));
}

TEST(ParseAndExpandErrorTest, NegativeRetries) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    exec: [x]\n    retries: -1\n"), 4,
                      "stages[0].retries", "must be 0 or more", 14));
}

TEST(ParseAndExpandErrorTest, NonPositiveTimeout) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    exec: [x]\n    timeout: 0\n"), 4,
                      "stages[0].timeout", "must be positive"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    exec: [x]\n    timeout: -5m\n"), 4,
                      "stages[0].timeout", "must be positive"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - name: a\n    exec: [x]\n    timeout: 1500ms\n"), 4,
                      "stages[0].timeout", "whole number of seconds"));
}

TEST(ParseAndExpandErrorTest, InvalidLabel) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  gpu: [s4000]
stages:
  - name: a
    labels: [docker, "=${gpu}"]
    exec: [x]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 5, "stages[0].labels[1]", "label '=s4000' has an empty key"));
}

TEST(ParseAndExpandErrorTest, UnknownVariable) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev]
  python: ["3.8"]
stages:
  - name: a
    exec: [sh, -c, "echo ${pyton}"]
)yaml";
  auto r = Parse(kYaml);
  // Column of the '${' itself, inside the quoted scalar.
  EXPECT_TRUE(IsError(r, 6, "stages[0].exec[2]", "unknown variable 'pyton'", 26));
  EXPECT_THAT(Message(r), HasSubstr("known: variant, python"));
}

TEST(ParseAndExpandErrorTest, UnknownVariableWithoutMatrix) {
  auto r = Parse("env:\n  A: \"${x}\"\nstages: [{name: a, exec: [x]}]\n");
  EXPECT_TRUE(IsError(r, 2, "env.A", "unknown variable 'x' (known: none"));
}

TEST(ParseAndExpandErrorTest, UnknownVariableInsideLiteralBlockPointsAtItsLine) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  python: ["3.8"]
stages:
  - name: a
    shell: |
      set -e
      echo ${python}
      make PY=${pyhton}
      echo done
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 8, "stages[0].shell", "unknown variable 'pyhton'", 15));
}

TEST(ParseAndExpandErrorTest, UnterminatedVariable) {
  auto r = Parse("stages:\n  - name: a\n    exec: [echo, \"${oops\"]\n");
  EXPECT_TRUE(IsError(r, 3, "stages[0].exec[1]", "unterminated '${'"));
}

TEST(ParseAndExpandErrorTest, MoreThanOneDocument) {
  auto r = Parse("stages: [{name: a, exec: [x]}]\n---\nstages: [{name: b, exec: [x]}]\n");
  EXPECT_TRUE(IsError(r, 3, "pipeline", "2 YAML documents"));
}

TEST(ParseAndExpandErrorTest, ErrorsCarryTheGivenFileName) {
  absl::StatusOr<v1::Job> r = ParseAndExpand("stages: []\n", "other/dir/x.yml", "1");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(Message(r), ::testing::StartsWith("other/dir/x.yml:1:9: stages: "));
}

}  // namespace
}  // namespace musafarm::pipeline
