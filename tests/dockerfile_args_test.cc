#include "tests/dockerfile_args.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pipeline/spec.h"

namespace musafarm::tests {
namespace {

using ::testing::Each;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

DockerfileArgs Parse(absl::string_view text) {
  absl::StatusOr<DockerfileArgs> df = ParseDockerfileArgs(text);
  EXPECT_TRUE(df.ok()) << df.status();
  return df.ok() ? *std::move(df) : DockerfileArgs{};
}

ArgCheckOptions Opts(std::set<std::string> passed = {}, std::set<std::string> env = {}) {
  ArgCheckOptions opt;
  opt.dockerfile = "Dockerfile.t";
  opt.who = "pipeline stage s";
  opt.passed = std::move(passed);
  opt.base_image_env = std::move(env);
  return opt;
}

// Rule 2 on `text`.
std::vector<std::string> Uses(absl::string_view text, std::set<std::string> passed = {},
                              std::set<std::string> env = {}) {
  return CheckArgUses(Parse(text), Opts(std::move(passed), std::move(env)));
}

// Rule 1 on `text`.
std::vector<std::string> Passed(absl::string_view text, std::set<std::string> passed) {
  return CheckPassedArgs(Parse(text), Opts(std::move(passed)));
}

// "NAME" or "NAME?" (has_default) for each reference of the stage, in order.
std::vector<std::string> Refs(const DockerfileStage& st) {
  std::vector<std::string> out;
  for (const VarRef& r : st.refs) out.push_back(r.name + (r.has_default ? "?" : ""));
  return out;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteFile(const std::string& path, absl::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

absl::StatusOr<std::string> SameDir(absl::string_view context) { return std::string(context); }

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

TEST(ParseDockerfileArgs, ContinuationsCommentsAndBlankLines) {
  DockerfileArgs df = Parse(
      "# a comment with ${NOT_A_REF}\n"         // 1
      "ARG A=1\n"                               // 2
      "\n"                                      // 3
      "FROM busybox\n"                          // 4
      "RUN echo ${A} \\\n"                      // 5
      "# dropped from the instruction: ${B}\n"  // 6
      "\n"                                      // 7
      "    && echo $C \\  \n"                   // 8 (blanks after the backslash)
      "    && true\n"                           // 9
      "  # indented comment ${D}\n"             // 10
      "ARG E\n");                               // 11
  ASSERT_THAT(df.global_args, SizeIs(1));
  EXPECT_EQ(df.global_args[0].name, "A");
  EXPECT_EQ(df.global_args[0].line, 2);
  ASSERT_THAT(df.stages, SizeIs(1));
  EXPECT_THAT(Refs(df.stages[0]), ElementsAre("A", "C"));
  EXPECT_EQ(df.stages[0].refs[0].line, 5);
  EXPECT_EQ(df.stages[0].refs[1].line, 5);  // the instruction's first line
  EXPECT_EQ(df.stages[0].refs[0].instruction, "RUN");
  ASSERT_THAT(df.stages[0].args, SizeIs(1));
  EXPECT_EQ(df.stages[0].args[0].name, "E");
  EXPECT_EQ(df.stages[0].args[0].line, 11);
}

TEST(ParseDockerfileArgs, SeveralArgsOnOneLineAndQuotedDefaults) {
  DockerfileArgs df = Parse(
      "ARG A=1 B C=\"x y\" D='' E= F=\"a \\\" b\"\n"
      "FROM busybox\n");
  std::vector<std::tuple<std::string, bool, std::string>> got;
  for (const ArgDecl& d : df.global_args) got.emplace_back(d.name, d.has_default, d.value);
  EXPECT_THAT(got,
              ElementsAre(std::make_tuple("A", true, "1"), std::make_tuple("B", false, ""),
                          std::make_tuple("C", true, "x y"), std::make_tuple("D", true, ""),
                          std::make_tuple("E", true, ""), std::make_tuple("F", true, "a \\\" b")));
}

TEST(ParseDockerfileArgs, ReferenceForms) {
  DockerfileArgs df = Parse(
      "FROM busybox\n"
      "RUN echo ${A:-x} ${B:+y} ${C} $D ${E-z} ${F#v} ${G:?no} ${H//./} ${#I} ${J=1} $1 $@ $? "
      "$$ \\$NO1 '$NO2 ${NO3}' \"$K it's ${L}\" $(cmd \"${M}\" 'x $NO4') $((N + 1)) "
      "${O:+:${O}} ${P:-${Q}}\n");
  EXPECT_THAT(Refs(df.stages[0]), ElementsAre("A?", "B?", "C", "D", "E?", "F", "G", "H", "I", "J?",
                                              "K", "L", "M", "O?", "O?", "P?", "Q"));
}

TEST(ParseDockerfileArgs, DollarDollarIsNotAReference) {
  // `$${X}` is no Dockerfile syntax; in RUN the shell reads `$$` (its pid), then `{X}`.
  DockerfileArgs df = Parse("FROM busybox\nRUN echo $${X} $$X\n");
  EXPECT_THAT(Refs(df.stages[0]), IsEmpty());
}

TEST(ParseDockerfileArgs, EnvDefinitionsAndTheirValues) {
  DockerfileArgs df = Parse(
      "FROM busybox\n"
      "ENV P=/x:${PATH} Q=\"a b\" \\\n"
      "    R=$Q\n"
      "ENV LEGACY some value $S\n");
  std::vector<std::string> envs;
  for (const EnvDef& e : df.stages[0].envs) envs.push_back(e.name);
  EXPECT_THAT(envs, ElementsAre("P", "Q", "R", "LEGACY"));
  EXPECT_THAT(Refs(df.stages[0]), ElementsAre("PATH", "Q", "S"));
  // R=$Q reads Q as it was before the instruction: the reference comes first.
  EXPECT_LT(df.stages[0].refs[1].seq, df.stages[0].envs[1].seq);
}

TEST(ParseDockerfileArgs, StagesNamesAndParents) {
  DockerfileArgs df = Parse(
      "ARG SYS=ubuntu:20.04\n"
      "FROM ${SYS} AS os\n"
      "FROM os as Base\n"
      "FROM scratch\n"
      "FROM --platform=$BUILDPLATFORM BASE AS tools\n"
      "FROM src-${KIND} AS src\n");
  ASSERT_THAT(df.stages, SizeIs(5));
  EXPECT_EQ(df.stages[0].name, "os");
  EXPECT_EQ(df.stages[0].from, "${SYS}");
  EXPECT_EQ(df.stages[0].parent, -1);
  EXPECT_EQ(df.stages[1].name, "base");
  EXPECT_EQ(df.stages[1].parent, 0);
  EXPECT_EQ(df.stages[2].name, "");
  EXPECT_EQ(df.stages[2].parent, -1);
  EXPECT_EQ(df.stages[3].parent, 1);  // stage names are case-insensitive
  EXPECT_THAT(Refs(df.stages[3]), ElementsAre("BUILDPLATFORM"));
  EXPECT_EQ(df.stages[4].parent, -1);
  EXPECT_THAT(Refs(df.stages[0]), ElementsAre("SYS"));
  EXPECT_EQ(df.FindStage("TOOLS"), 3);
  EXPECT_EQ(df.FindStage("nope"), -1);
}

TEST(ParseDockerfileArgs, InstructionsWhoseVariablesAreNotLookedAt) {
  DockerfileArgs df = Parse(
      "FROM busybox\n"
      "CMD echo $A\n"
      "ENTRYPOINT [\"sh\", \"-c\", \"$B\"]\n"
      "SHELL [\"/bin/sh\", \"-c\"]\n"
      "HEALTHCHECK CMD test -n \"$C\"\n"
      "ONBUILD RUN echo $D\n"
      "LABEL l=$E\n"
      "COPY --from=$F a /b/$G\n"
      "WORKDIR $H\n"
      "USER $I\n"
      "EXPOSE $J\n"
      "VOLUME $K\n"
      "STOPSIGNAL $L\n"
      "ADD $M /n\n");
  EXPECT_THAT(Refs(df.stages[0]), ElementsAre("E", "F", "G", "H", "I", "J", "K", "L", "M"));
}

TEST(ParseDockerfileArgs, ArgDefaultsAreExpanded) {
  DockerfileArgs df = Parse("ARG A=1 B=${A}/x\nFROM busybox\nARG C=$B\n");
  ASSERT_THAT(df.global_refs, SizeIs(1));
  EXPECT_EQ(df.global_refs[0].name, "A");
  EXPECT_EQ(df.global_refs[0].instruction, "ARG");
  EXPECT_GT(df.global_refs[0].seq, df.global_args[0].seq);
  EXPECT_LT(df.global_refs[0].seq, df.global_args[1].seq);
  EXPECT_THAT(Refs(df.stages[0]), ElementsAre("B"));
}

TEST(ParseDockerfileArgs, EscapeDirectiveAndCrlf) {
  DockerfileArgs df = Parse(
      "# escape=`\r\n"
      "FROM busybox\r\n"
      "RUN echo a `\r\n"
      "    $A\r\n"
      "COPY `$NOT x\r\n");
  ASSERT_THAT(df.stages, SizeIs(1));
  EXPECT_THAT(Refs(df.stages[0]), ElementsAre("A"));
  EXPECT_EQ(df.stages[0].refs[0].line, 3);
}

TEST(ParseDockerfileArgs, InstructionsAreCaseInsensitive) {
  DockerfileArgs df = Parse("arg A=1\nfrom busybox\narg A\nrun echo $A\n");
  EXPECT_THAT(df.global_args, SizeIs(1));
  ASSERT_THAT(df.stages, SizeIs(1));
  EXPECT_THAT(df.stages[0].args, SizeIs(1));
  EXPECT_THAT(Refs(df.stages[0]), ElementsAre("A"));
}

TEST(ParseDockerfileArgs, Errors) {
  auto message = [](absl::string_view text) {
    absl::StatusOr<DockerfileArgs> df = ParseDockerfileArgs(text);
    EXPECT_FALSE(df.ok()) << text;
    EXPECT_EQ(df.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(df.status().message());
  };
  EXPECT_EQ(message("FROM busybox\nRUNN echo\n"), "line 2: unknown instruction 'RUNN'");
  EXPECT_THAT(message("ARG A\nRUN echo\nFROM busybox\n"),
              HasSubstr("line 2: RUN before the first FROM"));
  EXPECT_THAT(message("FROM busybox\nARG\n"), HasSubstr("line 2: ARG needs a name"));
  EXPECT_THAT(message("FROM --platform=linux/amd64\n"), HasSubstr("line 1: FROM needs an image"));
  EXPECT_THAT(message("FROM b\nENV A=1 B\n"), HasSubstr("line 2: ENV: 'B' is not NAME=value"));
}

// ---------------------------------------------------------------------------
// Rule 1: what the pipeline passes is declared
// ---------------------------------------------------------------------------

TEST(CheckPassedArgs, PassedButNotDeclared) {
  ArgCheckOptions opt;
  opt.dockerfile = "Dockerfile.base";
  opt.who = "pipeline stage base";
  opt.passed = {"PYTHON_VERSION"};
  EXPECT_THAT(CheckPassedArgs(Parse("FROM busybox\nRUN echo $PYTHON_VERSION\n"), opt),
              ElementsAre("pipeline stage base passes PYTHON_VERSION but Dockerfile.base "
                          "declares no such ARG"));
}

TEST(CheckPassedArgs, DeclaredGloballyOrInAnyStage) {
  const char* kText =
      "ARG SYS=busybox\n"
      "FROM ${SYS} AS a\n"
      "ARG IN_A\n"
      "FROM busybox AS b\n"
      "ARG IN_B=1 ALSO=2\n";
  EXPECT_THAT(Passed(kText, {"SYS", "IN_A", "IN_B", "ALSO"}), IsEmpty());
  EXPECT_THAT(Passed(kText, {"IN_A", "ZZZ", "AAA"}),
              ElementsAre("pipeline stage s passes AAA but Dockerfile.t declares no such ARG",
                          "pipeline stage s passes ZZZ but Dockerfile.t declares no such ARG"));
}

TEST(CheckPassedArgs, PredefinedArgsNeedNoDeclaration) {
  EXPECT_THAT(Passed("FROM busybox\n", {"HTTP_PROXY", "no_proxy", "TARGETARCH"}), IsEmpty());
}

TEST(CheckPassedArgs, ArgNamesAreCaseSensitive) {
  EXPECT_THAT(Passed("FROM busybox\nARG python_version=3.8\n", {"PYTHON_VERSION"}), SizeIs(1));
}

// ---------------------------------------------------------------------------
// Rule 2: what the Dockerfile uses is declared, in scope, and has a value
// ---------------------------------------------------------------------------

TEST(CheckArgUses, DeclaredWithDefaultAndUsed) {
  EXPECT_THAT(Uses("ARG SYS=busybox\n"
                   "FROM ${SYS}\n"
                   "ARG V=1\n"
                   "RUN echo ${V}\n"
                   "LABEL v=$V\n"),
              IsEmpty());
}

TEST(CheckArgUses, ArgWithoutDefaultMustBePassed) {
  const char* kText = "FROM busybox\nARG TOKEN\nRUN echo ${TOKEN}\n";
  EXPECT_THAT(Uses(kText), ElementsAre("Dockerfile.t:2: ARG TOKEN in stage 0 (FROM busybox) has "
                                       "no default value and pipeline stage s does not pass it"));
  EXPECT_THAT(Uses(kText, {"TOKEN"}), IsEmpty());
}

TEST(CheckArgUses, ArgWithoutDefaultIsAnErrorEvenWhenNoUseIsVisible) {
  // A RUN's scripts see every ARG in scope through the environment.
  EXPECT_THAT(Uses("FROM busybox AS s1\nARG MIRROR\nRUN ./install.sh\n"),
              ElementsAre(HasSubstr("Dockerfile.t:2: ARG MIRROR in stage s1 has no default")));
}

TEST(CheckArgUses, StageArgTakesTheGlobalDefault) {
  EXPECT_THAT(Uses("ARG TAG=v2.0.0\nFROM busybox\nARG TAG\nRUN echo ${TAG}\n"), IsEmpty());
  EXPECT_THAT(Uses("ARG TAG\nFROM busybox\nARG TAG\nRUN echo ${TAG}\n"),
              ElementsAre(HasSubstr("ARG TAG in stage 0 (FROM busybox) has no default value "
                                    "(nor has the global ARG)")));
}

TEST(CheckArgUses, DefaultFormsCountAsDefault) {
  // The declaration has no value but every use has its own; the declaration is still
  // reported (scripts may read it), the uses are not.
  std::vector<std::string> p = Uses("FROM busybox\nARG K\nRUN echo \"${K:-none}\" ${K:+set}\n");
  EXPECT_THAT(p, ElementsAre(HasSubstr("Dockerfile.t:2: ARG K")));
  // In FROM, a ${X:-...} form is enough.
  EXPECT_THAT(Uses("ARG SYS\nFROM ${SYS:-busybox}\n"), IsEmpty());
}

TEST(CheckArgUses, GlobalArgUsedInAStageMustBeRedeclared) {
  EXPECT_THAT(
      Uses("ARG V=1\nFROM busybox AS b\nRUN echo ${V}\n"),
      ElementsAre("Dockerfile.t:3: stage b uses ${V} in RUN but ARG V is declared only "
                  "before the first FROM (line 1): the stage must re-declare it (`ARG V`)"));
  EXPECT_THAT(Uses("ARG V=1\nFROM busybox AS b\nLABEL v=$V\nCOPY a /${V}/\n"),
              ElementsAre(HasSubstr("Dockerfile.t:3: stage b uses ${V} in LABEL but ARG V is "
                                    "declared only before the first FROM"),
                          HasSubstr("Dockerfile.t:4: stage b uses ${V} in COPY but ARG V")));
  EXPECT_THAT(Uses("ARG V=1\nFROM busybox AS b\nARG V\nRUN echo ${V}\n"), IsEmpty());
  // A ${V:-...} form does not make it visible: the pipeline's value would be ignored.
  EXPECT_THAT(Uses("ARG V=1\nFROM busybox AS b\nRUN echo ${V:-0}\n"), SizeIs(1));
}

TEST(CheckArgUses, ArgsEndWithTheirStage) {
  EXPECT_THAT(Uses("FROM busybox AS a\nARG V=1\nFROM a AS b\nRUN echo $V\n"),
              ElementsAre("Dockerfile.t:4: stage b uses ${V} in RUN but the stage declares no "
                          "ARG V"));
}

TEST(CheckArgUses, UsedBeforeItsDeclaration) {
  EXPECT_THAT(Uses("FROM busybox AS b\nRUN echo ${V}\nARG V=1\n"),
              ElementsAre("Dockerfile.t:2: stage b uses ${V} in RUN before its `ARG V` on line 3"));
}

TEST(CheckArgUses, FromSeesOnlyGlobalArgs) {
  EXPECT_THAT(Uses("FROM ${IMG}\n"),
              ElementsAre("Dockerfile.t:1: FROM uses ${IMG} but no ARG IMG is declared before "
                          "the first FROM"));
  EXPECT_THAT(Uses("FROM busybox AS a\nARG IMG=x\nFROM ${IMG}\n"),
              ElementsAre(HasSubstr("no ARG IMG is declared before the first FROM (an ARG "
                                    "declared in a stage is not visible there)")));
  EXPECT_THAT(Uses("ARG IMG\nFROM ${IMG}\n"),
              ElementsAre("Dockerfile.t:2: FROM uses ${IMG} but global ARG IMG (line 1) has no "
                          "default value and pipeline stage s does not pass it"));
  EXPECT_THAT(Uses("ARG IMG\nFROM ${IMG}\n", {"IMG"}), IsEmpty());
  EXPECT_THAT(Uses("ARG IMG=busybox\nFROM ${IMG}\n"), IsEmpty());
  EXPECT_THAT(Uses("FROM --platform=$BUILDPLATFORM busybox\n"), IsEmpty());
}

TEST(CheckArgUses, GlobalArgDefaults) {
  EXPECT_THAT(Uses("ARG A=1\nARG B=${A}\nFROM b${B}\n"), IsEmpty());
  EXPECT_THAT(Uses("ARG B=${A}\nARG A=1\nFROM b${B}\n"),
              ElementsAre(HasSubstr("Dockerfile.t:1: the default of a global ARG uses ${A} but "
                                    "no ARG A is declared before the first FROM")));
  EXPECT_THAT(Uses("ARG A\nARG B=${A}\nFROM b${B}\n"),
              ElementsAre(HasSubstr("global ARG A (line 1) has no default value")));
}

TEST(CheckArgUses, StageArgDefaultsReferToArgsInScope) {
  EXPECT_THAT(Uses("FROM busybox AS b\nARG A=1\nARG B=${A}/x\n"), IsEmpty());
  EXPECT_THAT(Uses("FROM busybox AS b\nARG B=${A}/x\n"),
              ElementsAre("Dockerfile.t:2: stage b uses ${A} in ARG but the stage declares no "
                          "ARG A and sets no such ENV"));
}

TEST(CheckArgUses, ShellVariablesInRunAreNotArgs) {
  EXPECT_THAT(Uses("FROM busybox\n"
                   "RUN for f in /etc/*; do echo \"$f\" $HOME ${cred[@]} ${out%.txt}; done; "
                   "x=$(uname -m); echo \"${x}\" $$ $1\n"),
              IsEmpty());
}

TEST(CheckArgUses, RunVariableIsAnArgWhenTheFileDeclaresIt) {
  // X is an ARG of stage a: in stage b, $X is that ARG out of scope, not a shell variable.
  EXPECT_THAT(Uses("FROM busybox AS a\nARG X=1\nFROM busybox AS b\nRUN echo $X\n"),
              ElementsAre(HasSubstr("Dockerfile.t:4: stage b uses ${X} in RUN but the stage "
                                    "declares no ARG X")));
}

TEST(CheckArgUses, RunVariableIsAnArgWhenThePipelinePassesIt) {
  const char* kText = "FROM busybox AS b\nRUN echo $URL\n";
  EXPECT_THAT(Uses(kText), IsEmpty());
  EXPECT_THAT(Uses(kText, {"URL"}),
              ElementsAre("Dockerfile.t:2: stage b uses ${URL} in RUN but the stage declares no "
                          "ARG URL (pipeline stage s passes it)"));
}

TEST(CheckArgUses, SingleQuotedAndEscapedAreNotReferences) {
  EXPECT_THAT(Uses("ARG X=1\nFROM busybox\nRUN echo '$X' \\$X \"\\${X}\"\n"), IsEmpty());
}

TEST(CheckArgUses, DockerExpandedInstructionsNeedAnArgOrEnv) {
  EXPECT_THAT(Uses("FROM busybox AS b\nWORKDIR /src/${PROJECT}\n"),
              ElementsAre("Dockerfile.t:2: stage b uses ${PROJECT} in WORKDIR but the stage "
                          "declares no ARG PROJECT and sets no such ENV"));
  EXPECT_THAT(Uses("FROM busybox AS b\nCOPY a /opt/${DEST}/\nENV X=${Y}\n"), SizeIs(2));
  EXPECT_THAT(Uses("FROM busybox AS b\nARG PROJECT=p\nWORKDIR /src/${PROJECT}\n"), IsEmpty());
}

TEST(CheckArgUses, EnvVariablesAreNotArgs) {
  EXPECT_THAT(Uses("FROM busybox AS b\n"
                   "ENV TOOL=/opt/t\n"
                   "RUN echo $TOOL\n"
                   "LABEL t=$TOOL\n"
                   "WORKDIR ${TOOL}\n"),
              IsEmpty());
  // An ENV set later does not count.
  EXPECT_THAT(Uses("FROM busybox AS b\nLABEL t=${TOOL}\nENV TOOL=/opt/t\n"),
              ElementsAre(HasSubstr("Dockerfile.t:2: stage b uses ${TOOL} in LABEL")));
  // ENV shadows an ARG of the same name that the stage does not declare.
  EXPECT_THAT(Uses("ARG V=1\nFROM busybox AS b\nENV V=2\nRUN echo $V\n"), IsEmpty());
}

TEST(CheckArgUses, EnvComesFromTheParentStage) {
  EXPECT_THAT(Uses("FROM busybox AS a\nENV X=1\nFROM a AS b\nLABEL x=$X\n"), IsEmpty());
  EXPECT_THAT(Uses("FROM busybox AS a\nENV X=1\nFROM busybox AS b\nLABEL x=$X\n"), SizeIs(1));
}

TEST(CheckArgUses, EnvOfTheBaseImage) {
  const char* kText = "ARG B=base\nFROM ${B} AS dev\nENV P=/x:${PATH}\nLABEL t=${PYTORCH_TAG}\n";
  EXPECT_THAT(Uses(kText), ElementsAre(HasSubstr("Dockerfile.t:4: stage dev uses ${PYTORCH_TAG} "
                                                 "in LABEL")));
  EXPECT_THAT(Uses(kText, {}, {"PYTORCH_TAG"}), IsEmpty());
  // scratch has no ENV.
  EXPECT_THAT(Uses("FROM scratch\nLABEL t=${PYTORCH_TAG}\n", {}, {"PYTORCH_TAG"}), SizeIs(1));
}

TEST(CheckArgUses, ConditionalFormsOfUnknownVariables) {
  EXPECT_THAT(Uses("FROM busybox\n"
                   "ENV LD_LIBRARY_PATH=/usr/local/lib${LD_LIBRARY_PATH:+:${LD_LIBRARY_PATH}} \\\n"
                   "    X=${UNSET:-fallback}\n"),
              IsEmpty());
}

TEST(CheckArgUses, PredefinedArgs) {
  EXPECT_THAT(Uses("FROM busybox\nRUN echo $http_proxy $HTTPS_PROXY\n"), IsEmpty());
  EXPECT_THAT(Uses("FROM busybox\nARG TARGETARCH\nRUN echo $TARGETARCH\n"), IsEmpty());
  // Platform args are only in scope in a stage once declared there.
  EXPECT_THAT(Uses("FROM busybox\nLABEL arch=$TARGETARCH\n"), SizeIs(1));
}

TEST(CheckArgUses, EveryUseIsReportedOnce) {
  EXPECT_THAT(Uses("ARG V=1\nFROM busybox AS b\nRUN echo $V ${V} \"$V\"\n"), SizeIs(1));
}

// ---------------------------------------------------------------------------
// CheckBuildArgs: a job's docker_build tasks against their Dockerfiles
// ---------------------------------------------------------------------------

class CheckBuildArgsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = absl::StrCat(::testing::TempDir(), "/dockerfile_args_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::error_code ec;
    std::filesystem::create_directories(dir_, ec);
    ASSERT_FALSE(ec) << dir_ << ": " << ec.message();
  }

  std::vector<std::string> Check(const std::string& yaml) {
    std::string text = absl::StrReplaceAll(yaml, {{"@CONTEXT@", dir_}});
    absl::StatusOr<v1::Job> job = pipeline::ParseAndExpand(text, "p.yaml", "1");
    EXPECT_TRUE(job.ok()) << job.status();
    if (!job.ok()) return {"<pipeline does not parse>"};
    return CheckBuildArgs(*job, SameDir);
  }

  std::string dir_;
};

TEST_F(CheckBuildArgsTest, BothRulesOncePerStageAcrossTheMatrix) {
  WriteFile(dir_ + "/Dockerfile.base",
            "ARG SYS=busybox\n"
            "FROM ${SYS}\n"
            "ARG PY=3.8\n"
            "ARG TOKEN\n"
            "RUN echo ${PY} ${SYS}\n");
  std::vector<std::string> p = Check(
      "matrix:\n"
      "  python: [\"3.8\", \"3.9\"]\n"
      "stages:\n"
      "  - name: base\n"
      "    docker_build:\n"
      "      context: \"@CONTEXT@\"\n"
      "      dockerfile: Dockerfile.base\n"
      "      build_args: {PYTHON_VERSION: \"${python}\", PY: \"${python}\"}\n"
      "      tags: [\"b:py${python}\"]\n");
  EXPECT_THAT(p, ElementsAre("pipeline stage base passes PYTHON_VERSION but Dockerfile.base "
                             "declares no such ARG",
                             "Dockerfile.base:4: ARG TOKEN in stage 0 (FROM ${SYS}) has no "
                             "default value and pipeline stage base does not pass it",
                             "Dockerfile.base:5: stage 0 (FROM ${SYS}) uses ${SYS} in RUN but "
                             "ARG SYS is declared only before the first FROM (line 1): the stage "
                             "must re-declare it (`ARG SYS`)"));
}

TEST_F(CheckBuildArgsTest, DefaultDockerfileAndUnreadableFiles) {
  WriteFile(dir_ + "/Dockerfile", "FROM busybox\nARG A=1\n");
  WriteFile(dir_ + "/Dockerfile.bad", "FROM busybox\nFRM x\n");
  std::vector<std::string> p = Check(
      "stages:\n"
      "  - name: ok\n"
      "    docker_build: {context: \"@CONTEXT@\", build_args: {A: \"2\"}, tags: [a]}\n"
      "  - name: missing\n"
      "    docker_build: {context: \"@CONTEXT@\", dockerfile: nope, tags: [b]}\n"
      "  - name: bad\n"
      "    docker_build: {context: \"@CONTEXT@\", dockerfile: Dockerfile.bad, tags: [c]}\n");
  ASSERT_THAT(p, SizeIs(2));
  EXPECT_THAT(p[0], HasSubstr("pipeline stage missing: cannot read nope"));
  EXPECT_EQ(p[1], "pipeline stage bad: Dockerfile.bad: line 2: unknown instruction 'FRM'");
}

TEST_F(CheckBuildArgsTest, EnvOfAnImageBuiltByAnotherStage) {
  WriteFile(dir_ + "/Dockerfile.base", "FROM busybox AS os\nENV A=1\nFROM os AS base\nENV T=v2\n");
  WriteFile(dir_ + "/Dockerfile.dev", "ARG BASE_IMG=b\nFROM ${BASE_IMG}\nLABEL t=\"${T} ${A}\"\n");
  const std::string kPipeline =
      "stages:\n"
      "  - name: base\n"
      "    docker_build: {context: \"@CONTEXT@\", dockerfile: Dockerfile.base, "
      "tags: [\"reg/base:1\"]}\n"
      "  - name: dev\n"
      "    needs: [base]\n"
      "    docker_build: {context: \"@CONTEXT@\", dockerfile: Dockerfile.dev, "
      "build_args: {BASE_IMG: \"@BASE@\"}, tags: [\"reg/dev:1\"]}\n";
  EXPECT_THAT(Check(absl::StrReplaceAll(kPipeline, {{"@BASE@", "reg/base:1"}})), IsEmpty());
  EXPECT_THAT(Check(absl::StrReplaceAll(kPipeline, {{"@BASE@", "elsewhere/base:1"}})),
              ElementsAre(HasSubstr("uses ${T} in LABEL"), HasSubstr("uses ${A} in LABEL")));
}

// ---------------------------------------------------------------------------
// The fixture pipeline and the real Dockerfiles
// ---------------------------------------------------------------------------

const std::string kSource = MF_SOURCE_DIR;

TEST(FixturePipeline, BuildArgsMatchTheDockerfiles) {
  const std::string fixture = kSource + "/tests/fixtures/docker";
  std::string yaml =
      absl::StrReplaceAll(ReadFile(fixture + "/pipeline.yaml.in"),
                          {{"@REGISTRY@", "127.0.0.1:5000"}, {"@CONTEXT@", fixture}});
  absl::StatusOr<v1::Job> job =
      pipeline::ParseAndExpand(yaml, "tests/fixtures/docker/pipeline.yaml.in", "1");
  ASSERT_TRUE(job.ok()) << job.status();
  int builds = 0;
  for (const v1::Task& t : job->tasks()) builds += t.spec().run().has_docker_build();
  EXPECT_EQ(builds, 9);  // base, dev (3 Pythons each), release (3 Pythons)
  // Its builds name input `fixture`, the fixture directory.
  auto fixture_input = [&](absl::string_view context) -> absl::StatusOr<std::string> {
    if (context == "input:fixture") return fixture;
    return absl::NotFoundError(absl::StrCat("no input ", context));
  };
  EXPECT_THAT(CheckBuildArgs(*job, fixture_input), IsEmpty());
}

// pipelines/torch_musa.yaml's builds name its inputs (context, context@...,
// dockerfiles), each holding the repository's dockerfiles/ at its top.
absl::StatusOr<std::string> RealInputs(absl::string_view context) {
  if (absl::StartsWith(context, "input:context") || context == "input:dockerfiles") {
    return kSource + "/dockerfiles";
  }
  return absl::NotFoundError(absl::StrCat("no input ", context));
}

// pipelines/torch_musa.yaml (the default pipeline) against the real Dockerfiles:
// every build arg it passes is declared, every ARG used has a value or a default,
// with the base built by the pipeline and with one given by -b.
TEST(TorchMusaPipeline, BuildArgsMatchTheRealDockerfiles) {
  const std::string yaml = ReadFile(kSource + "/pipelines/torch_musa.yaml");
  for (const char* base_img : {"", "harbor.example.com/mt-ai/torch_musa-base:py3.9"}) {
    SCOPED_TRACE(base_img);
    pipeline::ExpandOptions o;
    o.params = {{"registry", "127.0.0.1:5000/"}, {"base_img", base_img}, {"push", "true"}};
    absl::StatusOr<v1::Job> job =
        pipeline::ParseAndExpand(yaml, "pipelines/torch_musa.yaml", "1", o);
    ASSERT_TRUE(job.ok()) << job.status();
    int builds = 0;
    for (const v1::Task& t : job->tasks()) builds += t.spec().run().has_docker_build();
    // base (unless -b), dev and release for each of 3 Pythons.
    EXPECT_EQ(builds, std::string(base_img).empty() ? 9 : 6);
    if (std::string(base_img).empty()) {
      EXPECT_THAT(CheckBuildArgs(*job, RealInputs), IsEmpty());
    } else {
      // A base image from -b is not built here, so the ENV it brings (the
      // base's PYTORCH_TAG) cannot be seen; nothing else may be missing.
      EXPECT_THAT(CheckBuildArgs(*job, RealInputs), Each(HasSubstr("uses ${PYTORCH_TAG}")));
    }
  }
}

// Upstream's last recipe (--recipe v2.0.1: Ubuntu 22.04, PyTorch v2.2.0,
// torchaudio, MooreThreads' kineto) on two GPU architectures: the same checks,
// and each build gets that recipe's and that architecture's values.
TEST(TorchMusaPipeline, TheV201RecipeOnTwoArchitecturesMatchesTheRealDockerfiles) {
  const std::string yaml = ReadFile(kSource + "/pipelines/torch_musa.yaml");
  pipeline::ExpandOptions o;
  o.params = {{"registry", "127.0.0.1:5000/"}};
  o.axes = {{"python", {"3.10"}}, {"arch", {"qy2", "ph1"}}, {"recipe", {"v2.0.1"}}};
  absl::StatusOr<v1::Job> job = pipeline::ParseAndExpand(yaml, "pipelines/torch_musa.yaml", "1", o);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_THAT(CheckBuildArgs(*job, RealInputs), IsEmpty());
  std::map<std::string, std::map<std::string, std::string>> args;  // task id -> build args
  for (const v1::Task& t : job->tasks()) {
    if (!t.spec().run().has_docker_build()) continue;
    const auto& a = t.spec().run().docker_build().build_args();
    args[t.id()] = std::map<std::string, std::string>(a.begin(), a.end());
  }
  ASSERT_EQ(args.size(), 6u);  // base, dev, release for each architecture
  const auto& base = args["1/dev-3.10-qy2-v2.0.1/base"];
  EXPECT_EQ(base.at("SYS"), "ubuntu:22.04");
  EXPECT_EQ(base.at("PYTORCH_TAG"), "v2.2.0");
  EXPECT_EQ(base.at("GCC_VERSION"), "11");
  const auto& dev = args["1/dev-3.10-ph1-v2.0.1/dev"];
  EXPECT_EQ(dev.at("AUDIO_TAG"), "v2.2.0");
  // torchaudio and kineto are cloned in the build; torch_musa comes from the
  // recipe's own tag's tree (input torch_musa@recipe=v2.0.1).
  EXPECT_EQ(dev.at("AUDIO_SOURCE"), "git");
  EXPECT_EQ(dev.at("KINETO_SOURCE"), "git");
  EXPECT_EQ(dev.at("TORCH_MUSA_SOURCE"), "context");
  EXPECT_EQ(base.at("PYTORCH_SOURCE"), "git");
  EXPECT_EQ(dev.at("USE_KINETO"), "1");
  EXPECT_EQ(dev.at("MUSA_ARCH"), "ph1");
  EXPECT_EQ(dev.at("TORCH_MUSA_TAG"), "v2.0.1");
  EXPECT_EQ(args["1/release-3.10-qy2-v2.0.1/release"].at("SYS"), "ubuntu:22.04");
  for (const v1::Task& t : job->tasks()) {
    if (!t.spec().run().has_docker_build()) continue;
    EXPECT_EQ(t.spec().run().docker_build().context_input(),
              t.spec().stage() == "release" ? "dockerfiles" : "context@recipe=v2.0.1")
        << t.id();
  }
  for (const v1::Task& t : job->tasks()) {
    if (t.spec().stage() != "test-dev") continue;
    // Tested on an agent of the cell's architecture, its own image.
    const std::string arch = t.spec().cell(2).value();
    EXPECT_THAT(t.spec().run().labels(), ::testing::Contains("musa_arch=" + arch));
    EXPECT_THAT(t.spec().run().docker_run().image(), HasSubstr("-" + arch));
  }
}

// The build args the farm's pipeline passes to the real images.
const std::set<std::string> kPipelineArgs = {
    "BASE_IMG", "PYTHON_VERSION", "MUSA_TOOLKITS_URL",  "MUDNN_URL",
    "MCCL_URL", "TORCH_WHL_URL",  "TORCH_MUSA_WHL_URL", "TORCH_MUSA_TAG"};

DockerfileArgs ReadReal(absl::string_view kind) {
  return Parse(ReadFile(absl::StrCat(kSource, "/dockerfiles/ubuntu/dockerfile.", kind)));
}

std::vector<std::string> CheckReal(absl::string_view kind, std::set<std::string> env = {}) {
  ArgCheckOptions opt;
  opt.dockerfile = absl::StrCat("dockerfiles/ubuntu/dockerfile.", kind);
  opt.who = "the pipeline";
  opt.passed = kPipelineArgs;
  opt.base_image_env = std::move(env);
  return CheckArgUses(ReadReal(kind), opt);
}

TEST(RealDockerfiles, Base) {
  DockerfileArgs df = ReadReal("base");
  ASSERT_THAT(df.stages, SizeIs(5));  // os, pytorch-src-context, pytorch-src-git, pytorch-src, base
  EXPECT_EQ(df.stages.back().name, "base");
  EXPECT_THAT(CheckReal("base"), IsEmpty());
}

TEST(RealDockerfiles, Dev) {
  // FROM ${BASE_IMG}: the image dockerfile.base builds, with its ENV.
  DockerfileArgs base = ReadReal("base");
  std::set<std::string> base_env = base.StageEnv(static_cast<int>(base.stages.size()) - 1);
  for (const char* name : {"PYTORCH_TAG", "PYTORCH_REPO_PATH", "PYTHON_VERSION", "CONDA_PREFIX"}) {
    EXPECT_EQ(base_env.count(name), 1u) << name;  // what dockerfiles/README.md says it sets
  }
  DockerfileArgs df = ReadReal("dev");
  EXPECT_EQ(df.stages.back().name, "dev");
  EXPECT_THAT(CheckReal("dev", base_env), IsEmpty());
}

// dockerfile.dev on a base made by upstream's build_base.sh: it brings none of
// our base's ENV, so every ARG dev uses must have a default or be passed.
TEST(RealDockerfiles, DevOnABaseMadeByUpstreamsScripts) {
  ArgCheckOptions opt;
  opt.dockerfile = "dockerfiles/ubuntu/dockerfile.dev";
  opt.who = "the pipeline";
  opt.passed = kPipelineArgs;
  opt.base_image_env = {"PATH"};  // what any Ubuntu image has
  EXPECT_THAT(CheckArgUses(ReadReal("dev"), opt), IsEmpty());
}

TEST(RealDockerfiles, Release) {
  DockerfileArgs df = ReadReal("release");
  EXPECT_EQ(df.stages.back().name, "release");
  EXPECT_THAT(CheckReal("release"), IsEmpty());
}

// dockerfiles/README.md's "Build args" tables: ARG -> default, per Dockerfile.
std::map<std::string, std::map<std::string, std::string>> ReadmeArgTables() {
  std::map<std::string, std::map<std::string, std::string>> tables;
  std::string section;
  for (absl::string_view line :
       absl::StrSplit(ReadFile(kSource + "/dockerfiles/README.md"), '\n')) {
    if (absl::StartsWith(line, "#")) {
      section.clear();
      absl::string_view h = line;
      if (absl::ConsumePrefix(&h, "### dockerfile.")) section = std::string(h);
      continue;
    }
    if (section.empty() || !absl::StartsWith(line, "| `")) continue;
    std::vector<absl::string_view> cells = absl::StrSplit(line, '|');
    if (cells.size() < 4) continue;
    absl::string_view dflt = absl::StripAsciiWhitespace(cells[2]);
    std::string value = "<see README>";
    if (dflt.size() >= 2 && dflt.front() == '`' && dflt.back() == '`' &&
        dflt.substr(1, dflt.size() - 2).find('`') == absl::string_view::npos) {
      value = std::string(dflt.substr(1, dflt.size() - 2));
      if (value == "\"\"") value.clear();
    }
    std::vector<absl::string_view> names = absl::StrSplit(cells[1], '`');
    for (size_t i = 1; i < names.size(); i += 2) tables[section][std::string(names[i])] = value;
  }
  return tables;
}

TEST(RealDockerfiles, ReadmeArgTablesMatchTheDeclarations) {
  std::map<std::string, std::map<std::string, std::string>> tables = ReadmeArgTables();
  for (const char* kind : {"base", "dev", "release"}) {
    SCOPED_TRACE(kind);
    ASSERT_EQ(tables.count(kind), 1u);
    const std::map<std::string, std::string>& table = tables[kind];
    EXPECT_GE(table.size(), 10u);  // the table was found and read
    DockerfileArgs df = ReadReal(kind);
    std::map<std::string, const ArgDecl*> declared;  // the first declaration with a value
    auto note = [&](const ArgDecl& d) {
      const ArgDecl*& slot = declared[d.name];
      if (slot == nullptr || (!slot->has_default && d.has_default)) slot = &d;
    };
    for (const ArgDecl& d : df.global_args) note(d);
    for (const DockerfileStage& st : df.stages) {
      for (const ArgDecl& d : st.args) note(d);
    }
    for (const auto& [name, decl] : declared) {
      auto it = table.find(name);
      if (it == table.end()) {
        ADD_FAILURE() << "dockerfile." << kind << " declares ARG " << name << " (line "
                      << decl->line << "), which README.md's table lacks";
        continue;
      }
      if (it->second != "<see README>") {
        EXPECT_TRUE(decl->has_default) << name;
        EXPECT_EQ(decl->value, it->second) << "default of " << name << " in dockerfile." << kind;
      }
    }
    for (const auto& [name, value] : table) {
      EXPECT_EQ(declared.count(name), 1u)
          << "README.md's table for dockerfile." << kind << " lists " << name
          << ", which the Dockerfile does not declare";
    }
  }
}

}  // namespace
}  // namespace musafarm::tests
