#include "cli/script_options.h"

#include <fstream>
#include <iterator>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pipeline/spec.h"

namespace musafarm::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Optional;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

std::optional<std::string> FakeEnv(const char* name) {
  if (std::string(name) == "GIT_CREDENTIALS") return std::string("https://u:p@git.example");
  return std::nullopt;
}

// The options pipelines/torch_musa.yaml declares: build.sh's and build_base.sh's.
const pipeline::PipelineOptions& TorchMusa() {
  static const pipeline::PipelineOptions* options = [] {
    std::ifstream in(std::string(MF_SOURCE_DIR) + "/pipelines/torch_musa.yaml");
    const std::string yaml(std::istreambuf_iterator<char>(in), {});
    absl::StatusOr<pipeline::PipelineOptions> o =
        pipeline::DeclaredOptions(yaml, "pipelines/torch_musa.yaml");
    EXPECT_TRUE(o.ok()) << o.status();
    return new pipeline::PipelineOptions(o.ok() ? *o : pipeline::PipelineOptions{});
  }();
  return *options;
}

absl::StatusOr<SubmitParts> Map(const GivenOptions& given, EnvLookup env = FakeEnv) {
  return MapSubmitOptions(TorchMusa(), given, env);
}

std::string Error(const GivenOptions& given, EnvLookup env = FakeEnv) {
  return std::string(Map(given, env).status().message());
}

TEST(ScriptOptionsTest, BuildShDevCommandMapsOntoParamsAxesAndSecrets) {
  // bash docker/build.sh -n torch_musa_dev -b BASE -f docker/ubuntu/dockerfile.dev
  //   -m URL --mudnn_url URL --mccl_url URL --torch_musa_tag dev1.6.0 -v 3.9
  GivenOptions o;
  o.declared = {{"name", {"torch_musa_dev"}},
                {"base_img", {"harbor/mt-ai/musa-pytorch-dev-py39:base"}},
                {"docker_file", {"docker/ubuntu/dockerfile.dev"}},
                {"musa_toolkits_url", {"https://dl.example/musa.tar?token=s3cr3t"}},
                {"mudnn_url", {"https://dl.example/mudnn.tar"}},
                {"mccl_url", {"https://dl.example/mccl.tar"}},
                {"torch_musa_tag", {"dev1.6.0"}},
                {"python_version", {"3.9"}},
                {"tag", {"nightly"}},
                {"sys", {"ubuntu:22.04"}}};
  absl::StatusOr<SubmitParts> p = Map(o);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->params,
              UnorderedElementsAre(Pair("name", "torch_musa_dev"),
                                   Pair("base_img", "harbor/mt-ai/musa-pytorch-dev-py39:base"),
                                   // -f as build.sh users pass it, under `dockerfiles`
                                   Pair("dev_dockerfile", "ubuntu/dockerfile.dev"),
                                   Pair("torch_musa_tag", "dev1.6.0"), Pair("tag", "nightly"),
                                   Pair("sys", "ubuntu:22.04")));
  EXPECT_THAT(p->axes,
              ElementsAre(Pair("variant", ElementsAre("dev")), Pair("python", ElementsAre("3.9"))));
  EXPECT_THAT(p->secrets, UnorderedElementsAre(
                              Pair("MUSA_TOOLKITS_URL", "https://dl.example/musa.tar?token=s3cr3t"),
                              Pair("MUDNN_URL", "https://dl.example/mudnn.tar"),
                              Pair("MCCL_URL", "https://dl.example/mccl.tar")));
  EXPECT_EQ(p->job_name, "torch_musa_dev");  // -n names the job too (names_job)
}

TEST(ScriptOptionsTest, ReleaseFlagPicksTheReleaseVariantAndDockerfile) {
  GivenOptions o;
  o.declared = {{"release", {""}},
                {"docker_file", {"./ubuntu/dockerfile.release"}},
                {"python_version", {"3.8,3.10"}},
                {"torch_whl_url", {"https://dl.example/torch.whl"}},
                {"torch_musa_whl_url", {"https://dl.example/torch_musa.whl"}}};
  absl::StatusOr<SubmitParts> p = Map(o);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->params, ElementsAre(Pair("release_dockerfile", "ubuntu/dockerfile.release")));
  EXPECT_THAT(p->axes, ElementsAre(Pair("variant", ElementsAre("release")),
                                   Pair("python", ElementsAre("3.8", "3.10"))));
  EXPECT_THAT(p->secrets, UnorderedElementsAre(
                              Pair("TORCH_WHL_URL", "https://dl.example/torch.whl"),
                              Pair("TORCH_MUSA_WHL_URL", "https://dl.example/torch_musa.whl")));
}

TEST(ScriptOptionsTest, VariantListAndGenericInputs) {
  GivenOptions o;
  o.declared = {{"variant", {"dev", "release"}}};
  o.params = {"registry=127.0.0.1:5000/", "push=true"};
  o.axes = {"python=3.8,3.9"};
  o.secrets = {"GIT_CREDENTIALS"};
  absl::StatusOr<SubmitParts> p = Map(o);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->params,
              UnorderedElementsAre(Pair("registry", "127.0.0.1:5000/"), Pair("push", "true")));
  EXPECT_THAT(p->axes, ElementsAre(Pair("variant", ElementsAre("dev", "release")),
                                   Pair("python", ElementsAre("3.8", "3.9"))));
  EXPECT_THAT(p->secrets, ElementsAre(Pair("GIT_CREDENTIALS", "https://u:p@git.example")));
}

TEST(ScriptOptionsTest, ContradictionsAndBadListsAreRefusedByOption) {
  GivenOptions both;
  both.declared = {{"release", {""}}, {"variant", {"dev"}}};
  EXPECT_THAT(Error(both), HasSubstr("-r/--release and --variant dev: pick one"));

  GivenOptions empty_item;
  empty_item.declared = {{"python_version", {"3.8,,3.9"}}};
  EXPECT_THAT(Error(empty_item), HasSubstr("-v/--python_version: empty value in '3.8,,3.9'"));

  GivenOptions twice;
  twice.declared = {{"python_version", {"3.8", "3.8"}}};
  EXPECT_THAT(Error(twice), HasSubstr("'3.8' is given twice"));

  GivenOptions f_two_variants;
  f_two_variants.declared = {{"docker_file", {"x"}}, {"variant", {"dev,release"}}};
  EXPECT_THAT(Error(f_two_variants), HasSubstr("-f/--docker_file: applies to one variant"));

  GivenOptions param_twice;
  param_twice.declared = {{"tag", {"a"}}};
  param_twice.params = {"tag=b"};
  EXPECT_THAT(Error(param_twice), HasSubstr("--param tag: param 'tag' is already set by -t/--tag"));

  GivenOptions bad_param;
  bad_param.params = {"no-equals"};
  EXPECT_FALSE(Map(bad_param).ok());

  // New with declared options: a value option given twice, an option the
  // pipeline does not declare.
  GivenOptions tag_twice;
  tag_twice.declared = {{"tag", {"a", "b"}}};
  EXPECT_EQ(Error(tag_twice), "-t/--tag: given 2 times; give it once");
  GivenOptions undeclared;
  undeclared.declared = {{"no_such", {"x"}}};
  EXPECT_EQ(Error(undeclared), "--no_such: the pipeline declares no such option");
}

TEST(ScriptOptionsTest, SecretErrorsNeverCarryTheValue) {
  GivenOptions unset;
  unset.secrets = {"MUSA_TOKEN"};
  EXPECT_THAT(Error(unset),
              HasSubstr("--secret MUSA_TOKEN: environment variable MUSA_TOKEN is not set"));

  GivenOptions inline_value;
  inline_value.secrets = {"MUSA_TOKEN=hunter2"};
  const std::string msg = Error(inline_value);
  EXPECT_THAT(msg, HasSubstr("expected the NAME of an environment variable"));
  EXPECT_THAT(msg, Not(HasSubstr("hunter2")));

  GivenOptions dup;
  dup.declared = {{"musa_toolkits_url", {"https://dl.example/?token=hunter2"}}};
  dup.secrets = {"MUSA_TOOLKITS_URL"};
  auto env = [](const char*) -> std::optional<std::string> { return std::string("hunter3"); };
  const std::string dup_msg = Error(dup, env);
  EXPECT_THAT(dup_msg,
              HasSubstr("secret MUSA_TOOLKITS_URL is already set by -m/--musa_toolkits_url"));
  EXPECT_THAT(dup_msg, Not(HasSubstr("hunter")));

  GivenOptions empty;
  empty.declared = {{"mccl_url", {""}}};
  EXPECT_THAT(Error(empty), HasSubstr("--mccl_url: the value is empty"));
}

TEST(ScriptOptionsTest, ExplainOriginNamesTheOptionTyped) {
  GivenOptions o;
  o.declared = {{"tag", {"x"}}, {"python_version", {"2.7"}}};
  o.params = {"foo=1"};
  absl::StatusOr<SubmitParts> p = Map(o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(ExplainOrigin("my.yaml: --param tag: the pipeline declares no param 'tag'", *p),
            "my.yaml: -t/--tag (param tag): the pipeline declares no param 'tag'");
  EXPECT_EQ(ExplainOrigin("my.yaml: --axis python: no axis 'python'", *p),
            "my.yaml: -v/--python_version (axis python): no axis 'python'");
  // Typed as --param: left as it is.
  EXPECT_EQ(ExplainOrigin("my.yaml: --param foo: nope", *p), "my.yaml: --param foo: nope");
}

TEST(ScriptOptionsTest, DefaultsApplyWhereNothingSetTheTarget) {
  absl::StatusOr<pipeline::PipelineOptions> declared = pipeline::DeclaredOptions(
      "params: {tag: latest}\nmatrix: {py: ['3.8', '3.9']}\n"
      "stages: [{name: a, exec: [x]}]\n"
      "options:\n"
      "  - {long: tag, short: t, param: tag, default: nightly}\n"
      "  - {long: py, axis: py, list: true, default: '3.9'}\n",
      "d.yaml");
  ASSERT_TRUE(declared.ok()) << declared.status();
  absl::StatusOr<SubmitParts> none = MapSubmitOptions(*declared, {}, FakeEnv);
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_THAT(none->params, ElementsAre(Pair("tag", "nightly")));
  EXPECT_THAT(none->axes, ElementsAre(Pair("py", ElementsAre("3.9"))));
  GivenOptions given;
  given.params = {"tag=mine"};
  given.axes = {"py=3.8"};
  absl::StatusOr<SubmitParts> set = MapSubmitOptions(*declared, given, FakeEnv);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_THAT(set->params, ElementsAre(Pair("tag", "mine")));
  EXPECT_THAT(set->axes, ElementsAre(Pair("py", ElementsAre("3.8"))));
}

TEST(ScriptOptionsTest, APipelineWithoutOptionsTakesOnlyTheGenericOnes) {
  const pipeline::PipelineOptions none;
  GivenOptions o;
  o.params = {"x=1"};
  absl::StatusOr<SubmitParts> p = MapSubmitOptions(none, o, FakeEnv);
  ASSERT_TRUE(p.ok());
  EXPECT_THAT(p->params, ElementsAre(Pair("x", "1")));
  GivenOptions tag;
  tag.declared = {{"tag", {"x"}}};
  EXPECT_FALSE(MapSubmitOptions(none, tag, FakeEnv).ok());
}

int Argc(const std::vector<const char*>& v) { return static_cast<int>(v.size()); }

TEST(PipelineFileArgTest, TheFirstArgumentAfterSubmitThatIsNoOption) {
  auto find = [](std::vector<const char*> args) {
    args.insert(args.begin(), "musafarm");
    return PipelineFileArg(Argc(args), args.data());
  };
  EXPECT_THAT(find({"submit", "p.yaml", "--watch"}), Optional(std::string("p.yaml")));
  EXPECT_THAT(find({"-c", "host:1", "submit", "-w", "-o", "json", "p.yaml", "-t", "x"}),
              Optional(std::string("p.yaml")));
  // torch_musa's options with no file: the values are not files.
  EXPECT_THAT(find({"submit", "-n", "torch_musa", "-t", "nightly"}), Optional(std::string("")));
  EXPECT_THAT(find({"submit", "--torch_musa_tag", "dev1.6.0"}), Optional(std::string("")));
  EXPECT_THAT(find({"submit"}), Optional(std::string("")));
  EXPECT_EQ(find({"jobs", "-n", "3"}), std::nullopt);
  EXPECT_EQ(find({"--coordinator", "submit", "jobs"}), std::nullopt);
  // The CLI's TLS options, before or after the subcommand (issue 10).
  EXPECT_THAT(find({"--ca", "ca.crt", "submit", "p.yaml"}), Optional(std::string("p.yaml")));
  EXPECT_THAT(find({"submit", "--ca", "ca.crt", "p.yaml"}), Optional(std::string("p.yaml")));
  EXPECT_THAT(find({"submit", "--insecure", "p.yaml"}), Optional(std::string("p.yaml")));
  // --context's value is no pipeline file (issue 17).
  EXPECT_THAT(find({"submit", "--context", "src=.", "p.yaml"}), Optional(std::string("p.yaml")));
  EXPECT_THAT(find({"submit", "--context", "src=.", "-n", "x"}), Optional(std::string("")));
}

}  // namespace
}  // namespace musafarm::cli
