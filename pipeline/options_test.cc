#include "pipeline/options.h"

#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pipeline/spec.h"

namespace musafarm::pipeline {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr char kHead[] = R"(params:
  tag: latest
  dev_dockerfile: d
  release_dockerfile: r
secrets: [TOKEN]
matrix:
  variant: [dev, release]
  python: ['3.8']
stages:
  - name: a
    exec: [make]
options:
)";  // options start on line 13

absl::StatusOr<PipelineOptions> Declared(const std::string& options) {
  return DeclaredOptions(absl::StrCat(kHead, options), "o.yaml");
}

std::string Error(const std::string& options) {
  absl::StatusOr<PipelineOptions> r = Declared(options);
  EXPECT_FALSE(r.ok()) << options;
  return std::string(r.status().message());
}

TEST(OptionsTest, EachKindIsReadWithItsFields) {
  absl::StatusOr<PipelineOptions> r = Declared(R"(
  - {long: tag, short: t, help: Image tag, param: tag, names_job: true}
  - {long: python_version, short: v, axis: python, list: true, default: "3.8"}
  - {long: token, secret: TOKEN}
  - {long: release, short: r, flag: {axis: variant, value: release}}
  - {long: docker_file, short: f, param: "${variant}_dockerfile"}
)");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->axes, ElementsAre("variant", "python"));
  ASSERT_EQ(r->options.size(), 5u);
  const OptionDecl& tag = r->options[0];
  EXPECT_EQ(tag.long_name, "tag");
  EXPECT_EQ(tag.short_name, "t");
  EXPECT_EQ(tag.help, "Image tag");
  EXPECT_EQ(tag.kind, OptionDecl::Kind::kParam);
  EXPECT_TRUE(tag.names_job);
  EXPECT_EQ(OptionDisplay(tag), "-t/--tag");
  EXPECT_EQ(OptionBecomes(tag), "param tag");
  const OptionDecl& py = r->options[1];
  EXPECT_EQ(py.kind, OptionDecl::Kind::kAxis);
  EXPECT_TRUE(py.list);
  EXPECT_TRUE(py.has_default);
  EXPECT_EQ(py.default_value, "3.8");
  EXPECT_EQ(OptionDisplay(r->options[2]), "--token");
  EXPECT_EQ(OptionBecomes(r->options[2]), "secret TOKEN");
  const OptionDecl& rel = r->options[3];
  EXPECT_EQ(rel.kind, OptionDecl::Kind::kFlag);
  EXPECT_EQ(rel.flag_kind, OptionDecl::Kind::kAxis);
  EXPECT_EQ(OptionBecomes(rel), "axis variant = release");
  const OptionDecl& f = r->options[4];
  EXPECT_EQ(f.per_axis, "variant");
  EXPECT_EQ(f.axis_default, "dev");
}

TEST(OptionsTest, APipelineWithoutOptionsDeclaresNone) {
  absl::StatusOr<PipelineOptions> r =
      DeclaredOptions("stages:\n  - name: a\n    exec: [make]\n", "o.yaml");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->options, IsEmpty());
}

TEST(OptionsTest, SubmitsOwnOptionsAreReserved) {
  EXPECT_THAT(Error("  - {long: watch, param: tag}\n"),
              HasSubstr("o.yaml:13:12: options[0].long: --watch is an option of musafarm "
                        "submit itself (reserved: --help, "));
  for (const char* planned :
       {"context", "dry-run", "no-cache", "strict", "priority", "logs", "output"}) {
    EXPECT_THAT(Error(absl::StrCat("  - {long: ", planned, ", param: tag}\n")),
                HasSubstr(absl::StrCat("o.yaml:13:12: options[0].long: --", planned,
                                       " is an option of musafarm submit itself")));
  }
  EXPECT_THAT(Error("  - {long: out, short: o, param: tag}\n"),
              HasSubstr("o.yaml:13:24: options[0].short: -o is an option of musafarm submit "
                        "itself"));
}

TEST(OptionsTest, DuplicatesAndMalformedNamesAreRefusedWithTheirLine) {
  EXPECT_EQ(Error("  - {long: tag, short: t, param: tag}\n  - {long: tag, param: tag}\n"),
            "o.yaml:14:5: options[1]: duplicate option --tag");
  EXPECT_EQ(Error("  - {long: tag, short: t, param: tag}\n  - {long: tig, short: t, param: tag}\n"),
            "o.yaml:14:5: options[1]: duplicate short option -t (also -t/--tag)");
  EXPECT_THAT(Error("  - {long: --tag, param: tag}\n"),
              HasSubstr("o.yaml:13:12: options[0].long: '--tag' is not a valid option name"));
  EXPECT_THAT(Error("  - {long: t, param: tag}\n"),
              HasSubstr("o.yaml:13:12: options[0].long: 't' is not a valid option name"));
  EXPECT_THAT(Error("  - {long: tag, short: tg, param: tag}\n"),
              HasSubstr("o.yaml:13:24: options[0].short: 'tg' is not a valid short option"));
  EXPECT_EQ(Error("  - {short: t, param: tag}\n"),
            "o.yaml:13:5: options[0]: missing required field 'long'");
}

TEST(OptionsTest, WhatAnOptionBecomesMustBeKnownAndDeclared) {
  EXPECT_THAT(Error("  - {long: tag, env: TAG}\n"),
              HasSubstr("o.yaml:13:17: options[0].env: unknown field 'env' (an option has long, "
                        "short, help, list, default, names_job, aliases, strip_prefix, note and "
                        "what it becomes: one of param, axis, secret or flag)"));
  EXPECT_EQ(Error("  - {long: tag, help: x}\n"),
            "o.yaml:13:5: options[0]: option --tag needs what it becomes: one of param, axis, "
            "secret or flag");
  EXPECT_EQ(Error("  - {long: tag, param: tag, axis: python}\n"),
            "o.yaml:13:29: options[0]: option has both 'param' and 'axis'; give exactly one of "
            "param, axis, secret or flag");
  EXPECT_EQ(Error("  - {long: tag, param: tga}\n"),
            "o.yaml:13:24: options[0].param: param 'tga' is not declared in 'params' (declared: "
            "tag, dev_dockerfile, release_dockerfile)");
  EXPECT_EQ(Error("  - {long: py, axis: pyton}\n"),
            "o.yaml:13:22: options[0].axis: 'pyton' is not a matrix axis (axes: variant, python)");
  EXPECT_EQ(Error("  - {long: tok, secret: TOKEM}\n"),
            "o.yaml:13:25: options[0].secret: secret 'TOKEM' is not declared in 'secrets' "
            "(declared: TOKEN)");
  EXPECT_THAT(Error("  - {long: file, param: \"${variant}_file\"}\n"),
              HasSubstr("o.yaml:13:25: options[0].param: param 'dev_file' (for variant dev) is "
                        "not declared"));
  EXPECT_THAT(Error("  - {long: rel, flag: {axis: variant}}\n"),
              HasSubstr("o.yaml:13:23: options[0].flag: missing required field 'value'"));
  EXPECT_THAT(Error("  - {long: rel, flag: {secret: TOKEN, value: x}}\n"),
              HasSubstr("o.yaml:13:24: options[0].flag.secret: unknown field 'secret'"));
  EXPECT_EQ(Error("  - {long: tag, param: tag, list: true}\n"),
            "o.yaml:13:29: options[0].list: 'list' does not apply to option --tag (param tag)");
  EXPECT_EQ(Error("  - {long: tok, secret: TOKEN, default: x}\n"),
            "o.yaml:13:32: options[0].default: 'default' does not apply to option --tok (secret "
            "TOKEN)");
}

TEST(OptionsTest, TheCoordinatorsParseChecksOptionsToo) {
  // ParseAndExpand reads the same declarations: a bad one fails a submit
  // that never went through the CLI.
  const absl::StatusOr<v1::Job> job =
      ParseAndExpand(absl::StrCat(kHead, "  - {long: watch, param: tag}\n"), "o.yaml", "1");
  ASSERT_FALSE(job.ok());
  EXPECT_THAT(std::string(job.status().message()), HasSubstr("o.yaml:13:12: options[0].long:"));
  EXPECT_TRUE(
      ParseAndExpand(absl::StrCat(kHead, "  - {long: tag, param: tag}\n"), "o.yaml", "1").ok());
}

// Issue 18: more long names, prefixes taken off a value, a note when given.
TEST(OptionsTest, AliasesStripPrefixesAndNotes) {
  absl::StatusOr<PipelineOptions> r = Declared(R"(
  - {long: python_version, aliases: [python_verison], axis: python, list: true}
  - {long: tag, param: tag, strip_prefix: ["./", "docker/"], note: "what it does"}
)");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(LongNames(r->options[0]), ElementsAre("python_version", "python_verison"));
  EXPECT_EQ(StripPrefixes(r->options[1], "./docker/./ubuntu/x"), "ubuntu/x");
  EXPECT_EQ(StripPrefixes(r->options[1], "ubuntu/./x"), "ubuntu/./x");  // only at the front
  EXPECT_EQ(r->options[1].note, "what it does");
  EXPECT_THAT(Error("  - {long: tag, param: tag}\n  - {long: tg, aliases: [tag], param: tag}\n"),
              HasSubstr("options[1]: duplicate option --tag"));
  EXPECT_THAT(Error("  - {long: tag, aliases: [watch], param: tag}\n"),
              HasSubstr("'watch' is not a valid alias"));
  EXPECT_THAT(Error("  - {long: token, secret: TOKEN, strip_prefix: [x]}\n"),
              HasSubstr("'strip_prefix' does not apply to option --token"));
}

std::string ReadSource(const std::string& path) {
  std::ifstream in(std::string(MF_SOURCE_DIR) + "/" + path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(OptionsTest, TorchMusaDeclaresBuildShAndBuildBaseShFlags) {
  absl::StatusOr<PipelineOptions> r =
      DeclaredOptions(ReadSource("pipelines/torch_musa.yaml"), "pipelines/torch_musa.yaml");
  ASSERT_TRUE(r.ok()) << r.status();
  std::vector<std::string> names;
  for (const OptionDecl& o : r->options) {
    names.push_back(absl::StrCat(OptionDisplay(o), " -> ", OptionBecomes(o)));
  }
  EXPECT_THAT(
      names,
      ElementsAre("-n/--name -> param name", "-t/--tag -> param tag", "-s/--sys -> param sys",
                  "-v/--python_version -> axis python", "-b/--base_img -> param base_img",
                  "-r/--release -> axis variant = release", "--variant -> axis variant",
                  "-f/--docker_file -> param ${variant}_dockerfile",
                  "--torch_musa_tag -> param torch_musa_tag",
                  "-m/--musa_toolkits_url -> secret MUSA_TOOLKITS_URL",
                  "--mudnn_url -> secret MUDNN_URL", "--mccl_url -> secret MCCL_URL",
                  "--torch_whl_url -> secret TORCH_WHL_URL",
                  "--torch_musa_whl_url -> secret TORCH_MUSA_WHL_URL",
                  // build_release.sh's, the math libraries, the arch and recipe axes,
                  // and build_all.sh's --no_prepare (issue 18).
                  "--torchaudio_whl_url -> secret TORCHAUDIO_WHL_URL",
                  "--torchvision_whl_url -> secret TORCHVISION_WHL_URL",
                  "--mualg_url -> secret MUALG_URL", "--muthrust_url -> secret MUTHRUST_URL",
                  "--musparse_url -> secret MUSPARSE_URL", "--murand_url -> secret MURAND_URL",
                  "--arch -> axis arch", "--recipe -> axis recipe",
                  "--no_prepare -> param no_prepare = true"));
  for (const OptionDecl& o : r->options) EXPECT_FALSE(o.help.empty()) << o.long_name;
  // getopt's spelling in torch_musa's scripts, and the -f paths build.sh users pass.
  EXPECT_THAT(r->options[3].aliases, ElementsAre("python_verison"));
  EXPECT_THAT(r->options[7].strip_prefixes, ElementsAre("./", "docker/"));
  // pipelines/torch_musa-exec.yaml, the farm's demo, declares none.
  absl::StatusOr<PipelineOptions> exec = DeclaredOptions(
      ReadSource("pipelines/torch_musa-exec.yaml"), "pipelines/torch_musa-exec.yaml");
  ASSERT_TRUE(exec.ok()) << exec.status();
  EXPECT_THAT(exec->options, IsEmpty());
}

}  // namespace
}  // namespace musafarm::pipeline
