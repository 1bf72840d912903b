// ParseAndExpand with ExpandOptions: params, `when` on params, optional
// needs, secrets, gpus and --axis overrides. spec_test.cc covers the rest.
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
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

constexpr absl::string_view kFile = "pipes/p.yaml";

absl::StatusOr<v1::Job> Parse(absl::string_view yaml, const ExpandOptions& options = {}) {
  return ParseAndExpand(yaml, kFile, "7", options);
}

ExpandOptions WithParams(std::map<std::string, std::string> params) {
  ExpandOptions o;
  o.params = std::move(params);
  return o;
}

ExpandOptions WithAxis(std::string axis, std::vector<std::string> values) {
  ExpandOptions o;
  o.axes.emplace_back(std::move(axis), std::move(values));
  return o;
}

ExpandOptions WithSecrets(std::vector<std::string> secrets) {
  ExpandOptions o;
  o.secrets = std::move(secrets);
  return o;
}

std::vector<std::string> Ids(const v1::Job& job) {
  std::vector<std::string> ids;
  for (const v1::Task& t : job.tasks()) ids.push_back(t.id());
  return ids;
}

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

std::vector<std::string> Secrets(const v1::Task& t) {
  return {t.spec().run().secrets().begin(), t.spec().run().secrets().end()};
}

std::string Message(const absl::StatusOr<v1::Job>& r) { return std::string(r.status().message()); }

// `r` is InvalidArgument "pipes/p.yaml:LINE:COL: FIELD: ..." holding `what`
// (and at column `col`, unless -1).
::testing::AssertionResult IsError(const absl::StatusOr<v1::Job>& r, int line,
                                   absl::string_view field, absl::string_view what, int col = -1) {
  if (r.ok()) return ::testing::AssertionFailure() << "parsed fine; wanted an error";
  if (r.status().code() != absl::StatusCode::kInvalidArgument) {
    return ::testing::AssertionFailure() << "code is not InvalidArgument: " << r.status();
  }
  const std::string msg(r.status().message());
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
  if (msg.find(std::string(what)) == std::string::npos) {
    return ::testing::AssertionFailure() << "message lacks '" << what << "': " << msg;
  }
  return ::testing::AssertionSuccess() << msg;
}

// `r` is InvalidArgument "pipes/p.yaml: FLAG NAME: what..." (no line: an option).
::testing::AssertionResult IsOptionError(const absl::StatusOr<v1::Job>& r, absl::string_view flag,
                                         absl::string_view name, absl::string_view what) {
  if (r.ok()) return ::testing::AssertionFailure() << "parsed fine; wanted an error";
  if (r.status().code() != absl::StatusCode::kInvalidArgument) {
    return ::testing::AssertionFailure() << "code is not InvalidArgument: " << r.status();
  }
  const std::string msg(r.status().message());
  const std::string want = absl::StrCat(kFile, ": ", flag, " ", name, ": ", what);
  if (msg.rfind(want, 0) != 0) {
    return ::testing::AssertionFailure() << "message does not start '" << want << "': " << msg;
  }
  return ::testing::AssertionSuccess() << msg;
}

// ---- params ----------------------------------------------------------------

constexpr absl::string_view kParams = R"yaml(params:
  TAG: v1
  REGISTRY: "127.0.0.1:5000"
  EMPTY: ""
  NEXT: build
matrix:
  python: ["3.8", "3.9"]
stages:
  - name: build
    labels: ["tag=${TAG}"]
    docker_build:
      context: /src
      tags: ["${REGISTRY}/img:${TAG}-py${python}"]
  - name: test
    needs: ["${NEXT}"]
    exec: [run, "${TAG}", "$${TAG}", "[${EMPTY}]"]
    env: {T: "${TAG}"}
)yaml";

TEST(ParamsTest, DefaultsSubstituteWhereMatrixVariablesDoAndGoIntoTheJob) {
  auto job = Parse(kParams);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->params(),
              UnorderedElementsAre(Pair("TAG", "v1"), Pair("REGISTRY", "127.0.0.1:5000"),
                                   Pair("EMPTY", ""), Pair("NEXT", "build")));
  const v1::Task& build = Find(*job, "7/3.9/build");
  EXPECT_THAT(build.spec().run().docker_build().tags(), ElementsAre("127.0.0.1:5000/img:v1-py3.9"));
  EXPECT_THAT(build.spec().run().labels(), ElementsAre("tag=v1"));
  const v1::Task& test = Find(*job, "7/3.8/test");
  EXPECT_THAT(Argv(test), ElementsAre("run", "v1", "${TAG}", "[]"));
  EXPECT_THAT(test.spec().run().env(), UnorderedElementsAre(Pair("T", "v1")));
  EXPECT_THAT(Needs(test), ElementsAre("7/3.8/build"));
}

TEST(ParamsTest, OptionsOverrideDefaults) {
  constexpr absl::string_view kYaml = R"yaml(params: {TAG: v1, OTHER: o}
stages:
  - name: a
    exec: [echo, "${TAG}", "${OTHER}"]
)yaml";
  auto job = Parse(kYaml, WithParams({{"TAG", "v2"}}));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Argv(Find(*job, "7/a")), ElementsAre("echo", "v2", "o"));
  EXPECT_THAT(job->params(), UnorderedElementsAre(Pair("TAG", "v2"), Pair("OTHER", "o")));
}

// Parameters are data: in a `shell:` script a value is quoted for /bin/sh
// where it stands (docs/pipeline.md); exec argv and env stay literal.
TEST(ParamsTest, ShellScriptsGetValuesQuotedExecArgvAndEnvLiteral) {
  constexpr absl::string_view kYaml = R"yaml(params: {P: x, Q: "3.8"}
matrix: {py: ["3.9"]}
stages:
  - name: sh
    shell: |
      echo ${P} "in ${P}" 'single ${P}' ${Q} "${py}" $${HOME}
  - name: ex
    exec: [echo, "${P}"]
    env: {V: "${P}"}
)yaml";
  const std::string hostile = "x$(touch F); touch G `touch H`";
  auto job = Parse(kYaml, WithParams({{"P", hostile}}));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Argv(Find(*job, "7/3.9/sh")),
              ElementsAre("echo 'x$(touch F); touch G `touch H`' \"in \"'x$(touch F); touch G "
                          "`touch H`'\"\" 'single x$(touch F); touch G `touch H`' 3.8 \"3.9\" "
                          "${HOME}\n"));
  const v1::Task& ex = Find(*job, "7/3.9/ex");
  EXPECT_THAT(Argv(ex), ElementsAre("echo", hostile));
  EXPECT_THAT(ex.spec().run().env(), UnorderedElementsAre(Pair("V", hostile)));
}

TEST(ParamsErrorTest, ValueThatCannotBeQuotedWhereItStandsNamesTheReference) {
  auto r = Parse("params: {P: x}\nstages:\n  - {name: s, shell: \"echo `echo ${P}`\"}\n",
                 WithParams({{"P", "a;b"}}));
  EXPECT_TRUE(IsError(r, 3, "stages[0].shell", "'${P}': the value 'a;b' has characters special"));
  EXPECT_THAT(r.status().message(), HasSubstr("inside `...` (write $(...) instead)"));
}

TEST(ParamsTest, NoParamsGivesAnEmptyMap) {
  auto job = Parse("stages: [{name: a, exec: [x]}]\n");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->params(), IsEmpty());
  EXPECT_THAT(job->secrets(), IsEmpty());
}

TEST(ParamsTest, NameOverrideStillWorks) {
  ExpandOptions o;
  o.name_override = "nightly";
  auto job = Parse("name: x\nstages: [{name: a, exec: [x]}]\n", o);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->name(), "nightly");
}

TEST(ParamsTest, MatrixPrefixDoesNotReachParams) {
  auto r = Parse("params: {P: x}\nstages:\n  - {name: a, exec: [\"${matrix.P}\"]}\n");
  EXPECT_TRUE(IsError(r, 3, "stages[0].exec[0]", "unknown variable 'P'"));
}

TEST(ParamsErrorTest, BadName) {
  EXPECT_TRUE(IsError(Parse("params: {1X: a}\nstages: [{name: a, exec: [x]}]\n"), 1, "params.1X",
                      "'1X' is not a valid param name", 10));
  EXPECT_TRUE(IsError(Parse("params: {a-b: a}\nstages: [{name: a, exec: [x]}]\n"), 1, "params.a-b",
                      "'a-b' is not a valid param name"));
}

TEST(ParamsErrorTest, NonScalarDefault) {
  EXPECT_TRUE(IsError(Parse("params: {A: [x]}\nstages: [{name: a, exec: [x]}]\n"), 1, "params.A",
                      "expected a default value (a string), got a list"));
  EXPECT_TRUE(IsError(Parse("params: {A: {b: c}}\nstages: [{name: a, exec: [x]}]\n"), 1, "params.A",
                      "got a mapping"));
  EXPECT_TRUE(IsError(Parse("params:\n  A:\nstages: [{name: a, exec: [x]}]\n"), 2, "params.A",
                      "got nothing (write \"\" for an empty default)"));
  EXPECT_TRUE(IsError(Parse("params: [A]\nstages: [{name: a, exec: [x]}]\n"), 1, "params",
                      "expected a mapping, got a list"));
}

TEST(ParamsErrorTest, NameOfAMatrixAxis) {
  constexpr absl::string_view kYaml = R"yaml(matrix: {python: ["3.8"]}
params: {python: "3.9"}
stages: [{name: a, exec: [x]}]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 2, "params.python",
                      "param 'python' has the name of a matrix axis", 10));
}

TEST(ParamsErrorTest, NameOfAnIncludeVariable) {
  // The params come first in the file; the matrix is still read before them.
  constexpr absl::string_view kYaml = R"yaml(params: {torch: "2.1"}
matrix:
  python: ["3.8"]
  include: [{python: "3.8", torch: "2.2"}]
stages: [{name: a, exec: [x]}]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 1, "params.torch",
                      "param 'torch' has the name of a variable that matrix.include introduces"));
}

TEST(ParamsErrorTest, UndeclaredOption) {
  constexpr absl::string_view kYaml = "params: {TAG: a, B: b}\nstages: [{name: a, exec: [x]}]\n";
  EXPECT_TRUE(IsOptionError(Parse(kYaml, WithParams({{"TAGG", "x"}})), "--param", "TAGG",
                            "not declared in the pipeline's 'params' (declared: TAG, B)"));
  EXPECT_TRUE(IsOptionError(
      Parse("stages: [{name: a, exec: [x]}]\n", WithParams({{"X", "1"}})), "--param", "X",
      "not declared in the pipeline's 'params' (the pipeline declares no params)"));
}

// ---- when on params --------------------------------------------------------

constexpr absl::string_view kWhenParams = R"yaml(params: {WHEEL: "no", SUITE: quick}
matrix:
  variant: [dev, release]
stages:
  - name: build
    exec: [build]
  - name: wheel
    when: {WHEEL: "yes", variant: release}
    needs: [build]
    exec: [wheel]
  - name: test
    when: {SUITE: [quick, full]}
    needs: [build]
    exec: [test]
  - name: bench
    when: {SUITE: full}
    exec: [bench]
)yaml";

TEST(WhenParamTest, DefaultsLeaveParamStagesOut) {
  auto job = Parse(kWhenParams);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job),
              ElementsAre("7/dev/build", "7/dev/test", "7/release/build", "7/release/test"));
}

TEST(WhenParamTest, ParamValuesSelectStagesTogetherWithAxes) {
  auto job = Parse(kWhenParams, WithParams({{"WHEEL", "yes"}, {"SUITE", "full"}}));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/dev/build", "7/dev/test", "7/dev/bench", "7/release/build",
                                     "7/release/wheel", "7/release/test", "7/release/bench"));
}

TEST(WhenParamTest, ParamValuesAreFreeForm) {
  // "nightly" is not a value anywhere in the file: fine for a param.
  auto job = Parse(kWhenParams, WithParams({{"SUITE", "nightly"}}));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/dev/build", "7/release/build"));
}

TEST(WhenParamErrorTest, KeyIsNeitherAxisNorParam) {
  constexpr absl::string_view kYaml = R"yaml(params: {A: x, B: y}
matrix: {variant: [dev]}
stages:
  - {name: a, when: {C: x}, exec: [x]}
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 4, "stages[0].when.C",
                      "'C' is not a matrix axis (axes: variant) or a param (params: A, B)"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, when: {v: x}, exec: [x]}\n"), 2,
                      "stages[0].when.v",
                      "'v' is not a matrix axis (the pipeline has no matrix axes) or a param (the "
                      "pipeline declares no params)"));
}

TEST(WhenParamErrorTest, NoStageRunsWithTheseParams) {
  constexpr absl::string_view kYaml = R"yaml(params: {RUN: "no"}
stages:
  - {name: a, when: {RUN: "yes"}, exec: [x]}
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 2, "stages", "no stage runs"));
  EXPECT_THAT(Message(Parse(kYaml)), HasSubstr("with params RUN=no"));
  EXPECT_TRUE(Parse(kYaml, WithParams({{"RUN", "yes"}})).ok());
}

// ---- optional needs --------------------------------------------------------

TEST(OptionalNeedsTest, DroppedWhereTheStageDoesNotRun) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
stages:
  - name: base
    when: {variant: dev}
    exec: [x]
  - name: lint
    exec: [x]
  - name: test
    needs: [{stage: base, optional: true}, lint]
    exec: [x]
)yaml";
  auto job = Parse(kYaml);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Needs(Find(*job, "7/dev/test")), ElementsAre("7/dev/base", "7/dev/lint"));
  EXPECT_THAT(Needs(Find(*job, "7/release/test")), ElementsAre("7/release/lint"));
}

TEST(OptionalNeedsTest, DroppedWhenAParamLeavesTheStageOut) {
  constexpr absl::string_view kYaml = R"yaml(params: {BUILD: "yes", NEED: build}
stages:
  - {name: build, when: {BUILD: "yes"}, exec: [x]}
  - name: test
    needs:
      - stage: "${NEED}"
        optional: true
    exec: [x]
)yaml";
  auto on = Parse(kYaml);
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_THAT(Needs(Find(*on, "7/test")), ElementsAre("7/build"));
  auto off = Parse(kYaml, WithParams({{"BUILD", "no"}}));
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_THAT(Ids(*off), ElementsAre("7/test"));
  EXPECT_THAT(Needs(Find(*off, "7/test")), IsEmpty());
}

TEST(OptionalNeedsTest, MappingWithoutOptionalIsRequired) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
stages:
  - {name: base, when: {variant: dev}, exec: [x]}
  - name: test
    needs: [{stage: base, optional: false}]
    exec: [x]
)yaml";
  auto r = Parse(kYaml);
  EXPECT_TRUE(
      IsError(r, 6, "stages[1].needs[0].stage", "stage 'base' does not run in cell (release)"));
  EXPECT_THAT(Message(r), HasSubstr("{stage: base, optional: true}"));
  const std::string plain =
      absl::StrReplaceAll(kYaml, {{"{stage: base, optional: false}", "{stage: base}"}});
  EXPECT_TRUE(IsError(Parse(plain), 6, "stages[1].needs[0].stage", "does not run in cell"));
}

TEST(OptionalNeedsErrorTest, UnknownOrSelfStageIsStillAnError) {
  constexpr absl::string_view kYaml = R"yaml(stages:
  - {name: a, exec: [x]}
  - name: b
    needs: [{stage: c, optional: true}]
    exec: [x]
)yaml";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 4, "stages[1].needs[0].stage", "unknown stage 'c' (stages are: a, b)"));
  const std::string self = absl::StrReplaceAll(kYaml, {{"stage: c", "stage: b"}});
  EXPECT_TRUE(IsError(Parse(self), 4, "stages[1].needs[0].stage", "stage 'b' needs itself"));
}

TEST(OptionalNeedsErrorTest, CycleThroughAMappingEntry) {
  constexpr absl::string_view kYaml = R"yaml(stages:
  - {name: a, needs: [{stage: b, optional: true}], exec: [x]}
  - {name: b, needs: [a], exec: [x]}
)yaml";
  EXPECT_TRUE(
      IsError(Parse(kYaml), 2, "stages[0].needs[0].stage", "dependency cycle: a -> b -> a"));
}

TEST(OptionalNeedsErrorTest, BadEntries) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x], needs: [{stage: a, opt: true}]}\n"),
                      2, "stages[0].needs[0].opt",
                      "unknown field 'opt' (allowed: stage, optional)"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x], needs: [{optional: true}]}\n"), 2,
                      "stages[0].needs[0]", "missing required field 'stage'"));
  EXPECT_TRUE(
      IsError(Parse("stages:\n  - {name: a, exec: [x], needs: [{stage: a, optional: yes}]}\n"), 2,
              "stages[0].needs[0].optional", "expected true or false, got 'yes'"));
  EXPECT_TRUE(
      IsError(Parse("stages:\n  - {name: a, exec: [x], needs: [[a]]}\n"), 2, "stages[0].needs[0]",
              "expected a stage name or a mapping {stage: NAME, optional: true}, got a list"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, exec: [x], needs: [{stage: [a]}]}\n"), 2,
                      "stages[0].needs[0].stage", "expected a string, got a list"));
}

// ---- secrets ---------------------------------------------------------------

constexpr absl::string_view kSecrets = R"yaml(secrets: [HF_TOKEN, PYPI_TOKEN, GH_TOKEN]
stages:
  - name: build
    secrets: [PYPI_TOKEN, HF_TOKEN]
    exec: [x]
  - name: test
    exec: [x]
)yaml";

TEST(SecretsTest, StageSecretsInOrderAndJobSecretsSortedUnique) {
  auto job = Parse(kSecrets, WithSecrets({"PYPI_TOKEN", "HF_TOKEN", "PYPI_TOKEN"}));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Secrets(Find(*job, "7/build")), ElementsAre("PYPI_TOKEN", "HF_TOKEN"));
  EXPECT_THAT(Secrets(Find(*job, "7/test")), IsEmpty());
  EXPECT_THAT(job->secrets(), ElementsAre("HF_TOKEN", "PYPI_TOKEN"));
}

TEST(SecretsTest, NoneSuppliedIsFine) {
  auto job = Parse(kSecrets);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->secrets(), IsEmpty());
  EXPECT_THAT(Secrets(Find(*job, "7/build")), ElementsAre("PYPI_TOKEN", "HF_TOKEN"));
}

TEST(SecretsTest, DeclaredFormsTravelWithTheStagesThatGetTheSecret) {
  constexpr absl::string_view kYaml = R"yaml(secrets: [A, {name: URL, forms: [base64, base64]}]
stages:
  - {name: a, secrets: [URL, A], exec: [x]}
  - {name: b, secrets: [A], exec: [x]}
)yaml";
  auto job = Parse(kYaml, WithSecrets({"URL"}));
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::StageSpec& a = Find(*job, "7/a").spec().run();
  EXPECT_THAT(a.secrets(), ElementsAre("URL", "A"));
  ASSERT_EQ(a.secret_forms().size(), 1u);
  EXPECT_THAT(a.secret_forms().at("URL").forms(), ElementsAre("base64"));
  EXPECT_THAT(Find(*job, "7/b").spec().run().secret_forms(), IsEmpty());
  EXPECT_THAT(job->secrets(), ElementsAre("URL"));
}

TEST(SecretsTest, DockerPushRegistryAuthIsOneOfTheStagesSecrets) {
  constexpr absl::string_view kYaml = R"yaml(secrets: [HARBOR]
stages:
  - {name: p, docker_push: {images: [h.example.com/a:1], registry_auth: HARBOR}}
)yaml";
  auto job = Parse(kYaml, WithSecrets({"HARBOR"}));
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::StageSpec& run = Find(*job, "7/p").spec().run();
  EXPECT_EQ(run.docker_push().registry_auth(), "HARBOR");
  EXPECT_THAT(run.secrets(), ElementsAre("HARBOR"));
  EXPECT_TRUE(IsError(Parse(absl::StrReplaceAll(kYaml, {{"auth: HARBOR", "auth: NOPE"}})), 3,
                      "stages[0].docker_push.registry_auth",
                      "secret 'NOPE' is not declared in the top-level 'secrets' (declared: HARBOR)"));
}

TEST(SecretsErrorTest, DeclarationWithForms) {
  const auto parse = [](absl::string_view decl) {
    return Parse(absl::StrCat("secrets: [", decl, "]\nstages: [{name: a, exec: [x]}]\n"));
  };
  EXPECT_TRUE(IsError(parse("{name: U, forms: [hex]}"), 1, "secrets[0].forms[0]",
                      "unknown secret form 'hex' (forms: base64"));
  EXPECT_TRUE(IsError(parse("{forms: [base64]}"), 1, "secrets[0]", "missing required field 'name'"));
  EXPECT_TRUE(IsError(parse("{name: U, form: [base64]}"), 1, "secrets[0].form",
                      "unknown field 'form' (allowed: name, forms)"));
  EXPECT_TRUE(IsError(parse("{name: U, forms: base64}"), 1, "secrets[0].forms",
                      "expected a list of forms, got a string"));
  EXPECT_TRUE(IsError(parse("{name: 9U}"), 1, "secrets[0].name", "'9U' is not a valid secret name"));
}

TEST(SecretsErrorTest, SecretsAreNeverSubstituted) {
  constexpr absl::string_view kYaml = R"yaml(secrets: [TOKEN]
stages:
  - {name: a, env: {T: "${TOKEN}"}, exec: [x]}
)yaml";
  auto r = Parse(kYaml, WithSecrets({"TOKEN"}));
  EXPECT_TRUE(IsError(r, 3, "stages[0].env.T", "unknown variable 'TOKEN'"));
  EXPECT_THAT(Message(r), HasSubstr("'TOKEN' is a secret, which is never substituted"));
}

TEST(SecretsErrorTest, TopLevelList) {
  EXPECT_TRUE(IsError(Parse("secrets: {A: b}\nstages: [{name: a, exec: [x]}]\n"), 1, "secrets",
                      "expected a list of secret names, got a mapping"));
  EXPECT_TRUE(IsError(Parse("secrets: [A, 9B]\nstages: [{name: a, exec: [x]}]\n"), 1, "secrets[1]",
                      "'9B' is not a valid secret name", 14));
  EXPECT_TRUE(IsError(Parse("secrets: [A, B, A]\nstages: [{name: a, exec: [x]}]\n"), 1,
                      "secrets[2]", "duplicate secret 'A'"));
}

TEST(SecretsErrorTest, StageSecrets) {
  constexpr absl::string_view kYaml = R"yaml(secrets: [A, B]
stages:
  - name: a
    secrets: [A, C]
    exec: [x]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 4, "stages[0].secrets[1]",
                      "secret 'C' is not declared in the top-level 'secrets' (declared: A, B)",
                      18));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, secrets: [A], exec: [x]}\n"), 2,
                      "stages[0].secrets[0]", "(the pipeline declares no secrets)"));
  EXPECT_TRUE(IsError(Parse(absl::StrReplaceAll(kYaml, {{"[A, C]", "[A, A]"}})), 4,
                      "stages[0].secrets[1]", "duplicate secret 'A'"));
  EXPECT_TRUE(IsError(Parse(absl::StrReplaceAll(kYaml, {{"[A, C]", "A"}})), 4, "stages[0].secrets",
                      "expected a list of secret names, got a string"));
}

TEST(SecretsErrorTest, UndeclaredOption) {
  EXPECT_TRUE(IsOptionError(Parse(kSecrets, WithSecrets({"HF_TOKEN", "AWS_KEY"})), "--secret",
                            "AWS_KEY",
                            "not declared in the pipeline's 'secrets' (declared: HF_TOKEN, "
                            "PYPI_TOKEN, GH_TOKEN)"));
  EXPECT_TRUE(IsOptionError(Parse("stages: [{name: a, exec: [x]}]\n", WithSecrets({"X"})),
                            "--secret", "X",
                            "not declared in the pipeline's 'secrets' (the pipeline declares no "
                            "secrets)"));
}

// ---- gpus ------------------------------------------------------------------

TEST(GpusTest, IntegerVariableAndDefault) {
  constexpr absl::string_view kYaml = R"yaml(params: {NGPU: "2"}
matrix:
  gpu: ["1", "4"]
stages:
  - {name: none, exec: [x]}
  - {name: fixed, gpus: 8, exec: [x]}
  - {name: per_cell, gpus: "${gpu}", exec: [x]}
  - {name: param, gpus: "${NGPU}", exec: [x]}
  - {name: zero, gpus: 0, exec: [x]}
)yaml";
  auto job = Parse(kYaml, WithParams({{"NGPU", "3"}}));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(Find(*job, "7/1/none").spec().run().gpus(), 0);
  EXPECT_EQ(Find(*job, "7/1/fixed").spec().run().gpus(), 8);
  EXPECT_EQ(Find(*job, "7/1/per_cell").spec().run().gpus(), 1);
  EXPECT_EQ(Find(*job, "7/4/per_cell").spec().run().gpus(), 4);
  EXPECT_EQ(Find(*job, "7/4/param").spec().run().gpus(), 3);
  EXPECT_EQ(Find(*job, "7/4/zero").spec().run().gpus(), 0);
}

TEST(GpusErrorTest, WrittenValues) {
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, gpus: -1, exec: [x]}\n"), 2, "stages[0].gpus",
                      "must be 0 or more, got '-1'", 21));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, gpus: two, exec: [x]}\n"), 2, "stages[0].gpus",
                      "expected a whole number of GPUs (0 or more) or a string with '${...}' that "
                      "gives one, got 'two'"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, gpus: 1.5, exec: [x]}\n"), 2, "stages[0].gpus",
                      "got '1.5'"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, gpus: 99999999999, exec: [x]}\n"), 2,
                      "stages[0].gpus", "'99999999999' is too large"));
  EXPECT_TRUE(IsError(Parse("stages:\n  - {name: a, gpus: [1], exec: [x]}\n"), 2, "stages[0].gpus",
                      "expected a string, got a list"));
}

TEST(GpusErrorTest, SubstitutedValueNamesTheCell) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  n: ["2", many]
stages:
  - {name: a, gpus: "${n}", exec: [x]}
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml), 4, "stages[0].gpus",
                      "expected a whole number of GPUs (0 or more), got 'many' (from '${n}' in "
                      "cell (many))"));
  auto param = Parse("params: {G: \"1\"}\nstages:\n  - {name: a, gpus: \"${G}\", exec: [x]}\n",
                     WithParams({{"G", "-2"}}));
  EXPECT_TRUE(IsError(param, 3, "stages[0].gpus", "must be 0 or more, got '-2' (from '${G}')"));
}

// ---- the docs/pipeline.md example -----------------------------------------

constexpr absl::string_view kDocsExample = R"yaml(params:
  TAG: nightly                # NAME: default (a string)
  BUILD_WHEEL: "no"
  NGPU: "1"
secrets: [HF_TOKEN, PYPI_TOKEN]
matrix:
  python: ["3.9", "3.10"]
stages:
  - name: build
    docker_build: {context: ., tags: ["torch:${TAG}-py${python}"]}
    secrets: [HF_TOKEN]
  - name: wheel
    when: {BUILD_WHEEL: "yes"}
    needs: [build]
    exec: [make, wheel]
    secrets: [PYPI_TOKEN]
  - name: test
    needs: [build, {stage: wheel, optional: true}]
    gpus: "${NGPU}"
    exec: [pytest, "-x"]
)yaml";

TEST(DocsExampleTest, ParamsAndSecrets) {
  auto plain = Parse(kDocsExample);
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_THAT(Ids(*plain), ElementsAre("7/3.9/build", "7/3.9/test", "7/3.10/build", "7/3.10/test"));
  EXPECT_THAT(Needs(Find(*plain, "7/3.9/test")), ElementsAre("7/3.9/build"));
  EXPECT_EQ(Find(*plain, "7/3.9/test").spec().run().gpus(), 1);

  ExpandOptions o = WithParams({{"BUILD_WHEEL", "yes"}, {"NGPU", "2"}});
  o.secrets = {"PYPI_TOKEN"};
  auto job = Parse(kDocsExample, o);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/3.9/build", "7/3.9/wheel", "7/3.9/test", "7/3.10/build",
                                     "7/3.10/wheel", "7/3.10/test"));
  EXPECT_THAT(Needs(Find(*job, "7/3.10/test")), ElementsAre("7/3.10/build", "7/3.10/wheel"));
  EXPECT_EQ(Find(*job, "7/3.10/test").spec().run().gpus(), 2);
  EXPECT_THAT(Secrets(Find(*job, "7/3.10/wheel")), ElementsAre("PYPI_TOKEN"));
  EXPECT_THAT(Secrets(Find(*job, "7/3.10/build")), ElementsAre("HF_TOKEN"));
  EXPECT_THAT(job->secrets(), ElementsAre("PYPI_TOKEN"));
  EXPECT_THAT(job->params(), UnorderedElementsAre(Pair("TAG", "nightly"),
                                                  Pair("BUILD_WHEEL", "yes"), Pair("NGPU", "2")));
  EXPECT_THAT(Find(*job, "7/3.10/build").spec().run().docker_build().tags(),
              ElementsAre("torch:nightly-py3.10"));
}

// ---- --axis ----------------------------------------------------------------

constexpr absl::string_view kAxes = R"yaml(matrix:
  variant: [dev, release]
  python: ["3.8", "3.9", "3.10"]
  exclude:
    - {variant: release, python: "3.8"}
    - {variant: dev, python: "3.10"}
  include:
    - {variant: dev, python: "3.11"}
    - {python: "3.10", torch: "2.2"}
    - {python: "3.9", torch: "2.1"}
stages:
  - name: build
    exec: [build, "${python}"]
  - name: new
    when: {python: ["3.10", "3.11"]}
    exec: [x]
)yaml";

TEST(AxisOptionTest, FileCellsWithoutOptions) {
  auto job = Parse(kAxes);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/dev-3.8/build", "7/dev-3.9/build", "7/release-3.9/build",
                                     "7/release-3.10/build", "7/release-3.10/new",
                                     "7/dev-3.11/build", "7/dev-3.11/new"));
}

TEST(AxisOptionTest, ReplacesValuesAndDropsIncludesForOtherValues) {
  // 3.11's include entry and 3.10's variable entry are dropped: no 3.11 cell,
  // and no "missing: variant" error from the 3.10 entry matching nothing.
  // `when` on 3.10/3.11 stays valid; stage `new` simply runs nowhere.
  auto job = Parse(kAxes, WithAxis("python", {"3.9"}));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Ids(*job), ElementsAre("7/dev-3.9/build", "7/release-3.9/build"));
  EXPECT_THAT(Argv(Find(*job, "7/dev-3.9/build")), ElementsAre("build", "3.9"));
  EXPECT_THAT(job->axes(), ElementsAre("variant", "python"));
  // Include entries that do not name a dropped value still apply.
  EXPECT_EQ(Find(*job, "7/release-3.9/build").spec().run().exec().argv_size(), 2);
  auto with_torch = Parse(
      absl::StrReplaceAll(kAxes, {{"exec: [build, \"${python}\"]", "exec: [build, \"${torch}\"]"}}),
      WithAxis("python", {"3.9"}));
  ASSERT_TRUE(with_torch.ok()) << with_torch.status();
  EXPECT_THAT(Argv(Find(*with_torch, "7/release-3.9/build")), ElementsAre("build", "2.1"));
}

TEST(AxisOptionTest, ExcludeStillAppliesToKeptValues) {
  auto job = Parse(kAxes, WithAxis("python", {"3.8", "3.10"}));
  ASSERT_TRUE(job.ok()) << job.status();
  // release-3.8 and dev-3.10 stay excluded; the 3.11 include is dropped.
  EXPECT_THAT(Ids(*job),
              ElementsAre("7/dev-3.8/build", "7/release-3.10/build", "7/release-3.10/new"));
}

TEST(AxisOptionTest, NewValuesAndOtherAxes) {
  auto job = Parse(kAxes, WithAxis("variant", {"release"}));
  ASSERT_TRUE(job.ok()) << job.status();
  // The dev-3.11 include entry names a dropped variant, so it is dropped.
  EXPECT_THAT(Ids(*job),
              ElementsAre("7/release-3.9/build", "7/release-3.10/build", "7/release-3.10/new"));
  auto fresh = Parse("matrix: {py: [\"3.8\"]}\nstages: [{name: a, exec: [\"${py}\"]}]\n",
                     WithAxis("py", {"3.12", "3.13"}));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_THAT(Ids(*fresh), ElementsAre("7/3.12/a", "7/3.13/a"));
}

TEST(AxisOptionErrorTest, WhenIsCheckedAgainstTheFilesValues) {
  constexpr absl::string_view kYaml = R"yaml(matrix: {python: ["3.8"]}
stages:
  - {name: a, when: {python: "3.12"}, exec: [x]}
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml, WithAxis("python", {"3.12"})), 3, "stages[0].when.python",
                      "'3.12' is not a value of axis 'python' (values: 3.8)"));
}

TEST(AxisOptionErrorTest, BadOptions) {
  EXPECT_TRUE(IsOptionError(Parse(kAxes, WithAxis("pyton", {"3.9"})), "--axis", "pyton",
                            "'pyton' is not a matrix axis (axes: variant, python)"));
  EXPECT_TRUE(IsOptionError(Parse("stages: [{name: a, exec: [x]}]\n", WithAxis("python", {"3"})),
                            "--axis", "python",
                            "'python' is not a matrix axis (the pipeline has no matrix axes)"));
  EXPECT_TRUE(IsOptionError(Parse(kAxes, WithAxis("python", {})), "--axis", "python",
                            "no values given (the file's values: 3.8, 3.9, 3.10)"));
  EXPECT_TRUE(IsOptionError(Parse(kAxes, WithAxis("python", {"3.9", ""})), "--axis", "python",
                            "empty value"));
  EXPECT_TRUE(IsOptionError(Parse(kAxes, WithAxis("python", {"3.9", "3.8", "3.9"})), "--axis",
                            "python", "duplicate value '3.9'"));
  EXPECT_TRUE(IsOptionError(Parse(kAxes, WithAxis("python", {"3 9"})), "--axis", "python",
                            "value '3 9' may hold only letters, digits and . _ : + -"));
  ExpandOptions twice = WithAxis("python", {"3.8"});
  twice.axes.emplace_back("python", std::vector<std::string>{"3.9"});
  EXPECT_TRUE(IsOptionError(Parse(kAxes, twice), "--axis", "python", "given more than once"));
}

TEST(AxisOptionErrorTest, EveryCellExcludedNamesTheOption) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  variant: [dev, release]
  exclude: [{variant: release}]
stages: [{name: a, exec: [x]}]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml, WithAxis("variant", {"release"})), 1, "matrix",
                      "matrix has no cells: every cell is excluded (with --axis variant)"));
}

TEST(AxisOptionErrorTest, NoStageRunsNamesTheOption) {
  constexpr absl::string_view kYaml = R"yaml(matrix:
  python: ["3.8", "3.9"]
stages: [{name: a, when: {python: "3.9"}, exec: [x]}]
)yaml";
  EXPECT_TRUE(IsError(Parse(kYaml, WithAxis("python", {"3.8"})), 3, "stages",
                      "no stage runs: every stage's 'when' excludes every cell (with --axis "
                      "python)"));
}

}  // namespace
}  // namespace musafarm::pipeline

namespace musafarm::pipeline {
namespace {

TEST(DefaultSubstitutionTest, EmptyValueTakesTheNestedDefault) {
  const char* kYaml = R"(
params:
  base_img: ""
  registry: "reg:5000/"
matrix:
  python: ["3.8"]
stages:
  - name: dev
    exec: ["echo", "${base_img:-${registry}base:py${python}}", "${registry:-unused}", "$${x:-y}"]
)";
  absl::StatusOr<v1::Job> job = ParseAndExpand(kYaml, "p.yaml", "1");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(job->tasks(0).spec().run().exec().argv(),
              ::testing::ElementsAre("echo", "reg:5000/base:py3.8", "reg:5000/", "${x:-y}"));
  ExpandOptions o;
  o.params["base_img"] = "mine:1";
  job = ParseAndExpand(kYaml, "p.yaml", "1", o);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->tasks(0).spec().run().exec().argv(1), "mine:1");
}

TEST(DefaultSubstitutionTest, ErrorsInsideTheDefaultPointAtTheirColumn) {
  absl::StatusOr<v1::Job> job = ParseAndExpand(
      "params: {a: \"\"}\nstages:\n  - name: s\n    exec: [\"${a:-${nosuch}}\"]\n", "p.yaml", "1");
  ASSERT_FALSE(job.ok());
  EXPECT_THAT(std::string(job.status().message()),
              ::testing::HasSubstr("p.yaml:4:18: stages[0].exec[0]: unknown variable 'nosuch'"));
  job = ParseAndExpand("params: {a: \"\"}\nstages:\n  - name: s\n    exec: [\"${a:-${a}\"]\n",
                       "p.yaml", "1");
  ASSERT_FALSE(job.ok());
  EXPECT_THAT(std::string(job.status().message()), ::testing::HasSubstr("unterminated '${'"));
}

}  // namespace
}  // namespace musafarm::pipeline

namespace musafarm::pipeline {
namespace {

TEST(DefaultSubstitutionTest, LiteralInsideADefaultAndUnusedDefaultsAreChecked) {
  absl::StatusOr<v1::Job> job = ParseAndExpand(
      "params: {a: \"\"}\nstages:\n  - name: s\n    exec: [\"${a:-a$${b}c}\"]\n", "p.yaml", "1");
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->tasks(0).spec().run().exec().argv(0), "a${b}c");
  // `a` is set, so the default is not used; its unknown variable is an error all the same.
  job = ParseAndExpand(
      "params: {a: \"x\"}\nstages:\n  - name: s\n    exec: [\"${a:-${nosuch}}\"]\n", "p.yaml", "1");
  ASSERT_FALSE(job.ok());
  EXPECT_THAT(std::string(job.status().message()), ::testing::HasSubstr("unknown variable 'nosuch'"));
}

TEST(SecretsCaseTest, NamesDifferingOnlyByCaseAreRefused) {
  absl::StatusOr<v1::Job> job =
      ParseAndExpand("secrets: [TOKEN, token]\nstages:\n  - name: s\n    exec: [x]\n", "p.yaml", "1");
  ASSERT_FALSE(job.ok());
  EXPECT_THAT(std::string(job.status().message()),
              ::testing::HasSubstr("p.yaml:1:18: secrets[1]: secret 'token' differs from 'TOKEN' "
                                   "only by case"));
}

// Issue 16, item 7: exec and shell stages collect files from their work dir.
TEST(CollectTest, ExecAndShellStagesCollectWorkDirPaths) {
  constexpr absl::string_view kYaml = R"yaml(matrix: {py: ["3.8"]}
stages:
  - {name: a, exec: [pytest, "--junitxml=out/junit-${py}.xml"], collect: ["out/junit-${py}.xml", ./log.txt]}
  - {name: b, shell: "pytest > ut.txt", collect: [ut.txt]}
)yaml";
  auto job = Parse(kYaml);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(Find(*job, "7/3.8/a").spec().run().exec().collect(),
              ElementsAre("out/junit-3.8.xml", "./log.txt"));
  EXPECT_THAT(Find(*job, "7/3.8/b").spec().run().exec().collect(), ElementsAre("ut.txt"));
}

TEST(CollectTest, PathsOutsideTheWorkDirAndDockerStagesAreRefused) {
  const auto parse = [](absl::string_view stage) {
    return Parse(absl::StrCat("params: {p: ../x}\nstages:\n  - ", stage, "\n"));
  };
  EXPECT_TRUE(IsError(parse("{name: a, exec: [x], collect: [/etc/passwd]}"), 3,
                      "stages[0].collect[0]",
                      "'/etc/passwd' is absolute; collect paths are relative to the task's work dir"));
  EXPECT_TRUE(IsError(parse("{name: a, exec: [x], collect: [out/../../x]}"), 3,
                      "stages[0].collect[0]", "'out/../../x' leaves the task's work dir ('..')"));
  EXPECT_TRUE(IsError(parse("{name: a, exec: [x], collect: [\"${p}\"]}"), 3,
                      "stages[0].collect[0]", "'../x' leaves the task's work dir ('..')"));
  EXPECT_TRUE(IsError(parse("{name: a, exec: [x], collect: [\"\"]}"), 3, "stages[0].collect[0]",
                      "collect path is empty"));
  EXPECT_TRUE(IsError(parse("{name: a, docker_run: {image: i}, collect: [x]}"), 3, "stages[0]",
                      "'collect' beside 'docker_run' is for exec and shell stages"));
}

}  // namespace
}  // namespace musafarm::pipeline
