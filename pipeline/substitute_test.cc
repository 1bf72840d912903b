#include "pipeline/substitute.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::pipeline {
namespace {

using ::testing::HasSubstr;

// The value of `key` in `yaml` as a Text, with its position.
Text TextAt(const YamlReader& r, const YAML::Node& root, const char* key) {
  Text t;
  EXPECT_TRUE(r.GetText(root[key], root.Mark(), key, &t).ok());
  return t;
}

class SubstituteTest : public ::testing::Test {
 protected:
  std::string Sub(const char* key) {
    absl::StatusOr<std::string> s =
        sub_.Substitute(TextAt(r_, root_, key), vars_, " in cell (dev)");
    return s.ok() ? *s : std::string(s.status().message());
  }

  const std::string yaml_ =
      "plain: a-${name}-b\n"
      "empty: ${tag:-latest}\n"
      "set: ${name:-other}\n"
      "nested: ${tag:-${name}-${variant}}\n"
      "literal: $${HOME} and $$\n"
      "matrix_only: ${matrix.name}\n"
      "unknown: x ${nmae}\n"
      "secret: ${TOKEN}\n"
      "open: ${name\n"
      "bad_default: ${name:-${nope}}\n";
  const YamlReader r_{yaml_, "s.yaml"};
  const YAML::Node root_ = YAML::Load(yaml_);
  const std::vector<Var> vars_ = {{"variant", "dev"}, {"name", "torch", true}, {"tag", "", true}};
  const Substituter sub_{r_, {"TOKEN"}};
};

TEST_F(SubstituteTest, ReferencesDefaultsAndLiterals) {
  EXPECT_EQ(Sub("plain"), "a-torch-b");
  EXPECT_EQ(Sub("empty"), "latest");  // ${x:-y}: y when x is empty
  EXPECT_EQ(Sub("set"), "torch");
  EXPECT_EQ(Sub("nested"), "torch-dev");
  EXPECT_EQ(Sub("literal"), "${HOME} and $$");
}

TEST_F(SubstituteTest, ErrorsPointAtTheReference) {
  // ${matrix.NAME} does not reach a param.
  EXPECT_EQ(Sub("matrix_only"),
            "s.yaml:6:14: matrix_only: unknown variable 'name' in cell (dev) (known: variant, "
            "name, tag; write '$${' for a literal '${')");
  EXPECT_EQ(Sub("unknown"),
            "s.yaml:7:12: unknown: unknown variable 'nmae' in cell (dev) (known: variant, name, "
            "tag; write '$${' for a literal '${')");
  EXPECT_THAT(Sub("secret"), HasSubstr("'TOKEN' is a secret, which is never substituted"));
  EXPECT_EQ(Sub("open"), "s.yaml:9:7: open: unterminated '${' (write '$${' for a literal '${')");
  // A default is checked even where the value is set, so the next submitter
  // does not find the mistake.
  EXPECT_THAT(Sub("bad_default"), HasSubstr("s.yaml:10:22: bad_default: unknown variable 'nope'"));
}

TEST_F(SubstituteTest, InvalidNamesTheSourceOnlyWhenAVariableMadeTheValue) {
  EXPECT_EQ(sub_.Invalid(TextAt(r_, root_, "plain"), " in cell (dev)", "too long").message(),
            "s.yaml:1:8: plain: too long (from 'a-${name}-b' in cell (dev))");
  const YAML::Node fixed = YAML::Load("k: abc\n");
  EXPECT_EQ(sub_.Invalid(TextAt(r_, fixed, "k"), " in cell (dev)", "too long").message(),
            "s.yaml:1:4: k: too long");
}

TEST_F(SubstituteTest, SubstituteAllCanRefuseEmptyResults) {
  google::protobuf::RepeatedPtrField<std::string> out;
  std::vector<Text> texts = {TextAt(r_, root_, "plain"), TextAt(r_, root_, "set")};
  ASSERT_TRUE(sub_.SubstituteAll(texts, vars_, "", /*non_empty=*/true, &out).ok());
  ASSERT_EQ(out.size(), 2);
  EXPECT_EQ(out[1], "torch");
  const YAML::Node e = YAML::Load("e: ${tag}\n");
  EXPECT_EQ(sub_.SubstituteAll({TextAt(r_, e, "e")}, vars_, "", true, &out).message(),
            "s.yaml:1:4: e: must not be empty (from '${tag}')");
}

}  // namespace
}  // namespace musafarm::pipeline
