#include "cli/script_options.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::cli {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

std::optional<std::string> FakeEnv(const char* name) {
  if (std::string(name) == "GIT_CREDENTIALS") return std::string("https://u:p@git.example");
  return std::nullopt;
}

TEST(ScriptOptionsTest, BuildShDevCommandMapsOntoParamsAxesAndSecrets) {
  // bash docker/build.sh -n torch_musa_dev -b BASE -f docker/ubuntu/dockerfile.dev
  //   -m URL --mudnn_url URL --mccl_url URL --torch_musa_tag dev1.6.0 -v 3.9
  ScriptOptions o;
  o.name = "torch_musa_dev";
  o.base_img = "harbor/mt-ai/musa-pytorch-dev-py39:base";
  o.docker_file = "docker/ubuntu/dockerfile.dev";
  o.musa_toolkits_url = "https://dl.example/musa.tar?token=s3cr3t";
  o.mudnn_url = "https://dl.example/mudnn.tar";
  o.mccl_url = "https://dl.example/mccl.tar";
  o.torch_musa_tag = "dev1.6.0";
  o.python_versions = {"3.9"};
  o.tag = "nightly";
  o.sys = "ubuntu:22.04";
  absl::StatusOr<SubmitParts> p = MapScriptOptions(o, FakeEnv);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->params,
              UnorderedElementsAre(Pair("name", "torch_musa_dev"),
                                   Pair("base_img", "harbor/mt-ai/musa-pytorch-dev-py39:base"),
                                   Pair("dev_dockerfile", "docker/ubuntu/dockerfile.dev"),
                                   Pair("torch_musa_tag", "dev1.6.0"), Pair("tag", "nightly"),
                                   Pair("sys", "ubuntu:22.04")));
  EXPECT_THAT(p->axes, ElementsAre(Pair("variant", ElementsAre("dev")),
                                   Pair("python", ElementsAre("3.9"))));
  EXPECT_THAT(p->secrets,
              UnorderedElementsAre(Pair("MUSA_TOOLKITS_URL", "https://dl.example/musa.tar?token=s3cr3t"),
                                   Pair("MUDNN_URL", "https://dl.example/mudnn.tar"),
                                   Pair("MCCL_URL", "https://dl.example/mccl.tar")));
}

TEST(ScriptOptionsTest, ReleaseFlagPicksTheReleaseVariantAndDockerfile) {
  ScriptOptions o;
  o.release = true;
  o.docker_file = "./ubuntu/dockerfile.release";
  o.python_versions = {"3.8,3.10"};
  o.torch_whl_url = "https://dl.example/torch.whl";
  o.torch_musa_whl_url = "https://dl.example/torch_musa.whl";
  absl::StatusOr<SubmitParts> p = MapScriptOptions(o, FakeEnv);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->params, ElementsAre(Pair("release_dockerfile", "./ubuntu/dockerfile.release")));
  EXPECT_THAT(p->axes, ElementsAre(Pair("variant", ElementsAre("release")),
                                   Pair("python", ElementsAre("3.8", "3.10"))));
  EXPECT_THAT(p->secrets, UnorderedElementsAre(Pair("TORCH_WHL_URL", "https://dl.example/torch.whl"),
                                               Pair("TORCH_MUSA_WHL_URL",
                                                    "https://dl.example/torch_musa.whl")));
}

TEST(ScriptOptionsTest, VariantListAndGenericInputs) {
  ScriptOptions o;
  o.variants = {"dev", "release"};
  o.params = {"registry=127.0.0.1:5000/", "push=true"};
  o.axes = {"python=3.8,3.9"};
  o.secrets = {"GIT_CREDENTIALS"};
  absl::StatusOr<SubmitParts> p = MapScriptOptions(o, FakeEnv);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->params, UnorderedElementsAre(Pair("registry", "127.0.0.1:5000/"),
                                              Pair("push", "true")));
  EXPECT_THAT(p->axes, ElementsAre(Pair("variant", ElementsAre("dev", "release")),
                                   Pair("python", ElementsAre("3.8", "3.9"))));
  EXPECT_THAT(p->secrets, ElementsAre(Pair("GIT_CREDENTIALS", "https://u:p@git.example")));
}

TEST(ScriptOptionsTest, ContradictionsAndBadListsAreRefusedByOption) {
  ScriptOptions both;
  both.release = true;
  both.variants = {"dev"};
  EXPECT_THAT(std::string(MapScriptOptions(both, FakeEnv).status().message()),
              HasSubstr("-r/--release and --variant dev: pick one"));

  ScriptOptions empty_item;
  empty_item.python_versions = {"3.8,,3.9"};
  EXPECT_THAT(std::string(MapScriptOptions(empty_item, FakeEnv).status().message()),
              HasSubstr("-v/--python_version: empty value in '3.8,,3.9'"));

  ScriptOptions twice;
  twice.python_versions = {"3.8", "3.8"};
  EXPECT_THAT(std::string(MapScriptOptions(twice, FakeEnv).status().message()),
              HasSubstr("'3.8' is given twice"));

  ScriptOptions f_two_variants;
  f_two_variants.docker_file = "x";
  f_two_variants.variants = {"dev,release"};
  EXPECT_THAT(std::string(MapScriptOptions(f_two_variants, FakeEnv).status().message()),
              HasSubstr("-f/--docker_file: applies to one variant"));

  ScriptOptions param_twice;
  param_twice.tag = "a";
  param_twice.params = {"tag=b"};
  EXPECT_THAT(std::string(MapScriptOptions(param_twice, FakeEnv).status().message()),
              HasSubstr("--param tag: param 'tag' is already set by -t/--tag"));

  ScriptOptions bad_param;
  bad_param.params = {"no-equals"};
  EXPECT_FALSE(MapScriptOptions(bad_param, FakeEnv).ok());
}

TEST(ScriptOptionsTest, SecretErrorsNeverCarryTheValue) {
  ScriptOptions unset;
  unset.secrets = {"MUSA_TOKEN"};
  EXPECT_THAT(std::string(MapScriptOptions(unset, FakeEnv).status().message()),
              HasSubstr("--secret MUSA_TOKEN: environment variable MUSA_TOKEN is not set"));

  ScriptOptions inline_value;
  inline_value.secrets = {"MUSA_TOKEN=hunter2"};
  const std::string msg(MapScriptOptions(inline_value, FakeEnv).status().message());
  EXPECT_THAT(msg, HasSubstr("expected the NAME of an environment variable"));
  EXPECT_THAT(msg, Not(HasSubstr("hunter2")));

  ScriptOptions dup;
  dup.musa_toolkits_url = "https://dl.example/?token=hunter2";
  dup.secrets = {"MUSA_TOOLKITS_URL"};
  auto env = [](const char*) -> std::optional<std::string> { return std::string("hunter3"); };
  const std::string dup_msg(MapScriptOptions(dup, env).status().message());
  EXPECT_THAT(dup_msg, HasSubstr("secret MUSA_TOOLKITS_URL is already set by -m/--musa_toolkits_url"));
  EXPECT_THAT(dup_msg, Not(HasSubstr("hunter")));

  ScriptOptions empty;
  empty.mccl_url = "";
  EXPECT_THAT(std::string(MapScriptOptions(empty, FakeEnv).status().message()),
              HasSubstr("--mccl_url: the value is empty"));
}

TEST(ScriptOptionsTest, ExplainOriginNamesTheOptionTyped) {
  ScriptOptions o;
  o.tag = "x";
  o.python_versions = {"2.7"};
  o.params = {"foo=1"};
  absl::StatusOr<SubmitParts> p = MapScriptOptions(o, FakeEnv);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(ExplainOrigin("my.yaml: --param tag: the pipeline declares no param 'tag'", *p),
            "my.yaml: -t/--tag (param tag): the pipeline declares no param 'tag'");
  EXPECT_EQ(ExplainOrigin("my.yaml: --axis python: no axis 'python'", *p),
            "my.yaml: -v/--python_version (axis python): no axis 'python'");
  // Typed as --param: left as it is.
  EXPECT_EQ(ExplainOrigin("my.yaml: --param foo: nope", *p), "my.yaml: --param foo: nope");
}

}  // namespace
}  // namespace musafarm::cli
