#include "pipeline/yaml_reader.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::pipeline {
namespace {

using ::testing::HasSubstr;

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(YamlReaderTest, ErrorsReadFileLineColumnFieldWhat) {
  const YamlReader r("a: 1\n", "p.yaml");
  YAML::Mark mark;
  mark.line = 4;  // zero-based, as yaml-cpp gives them
  mark.column = 2;
  const absl::Status s = r.Error(mark, "stages[0].name", "bad");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "p.yaml:5:3: stages[0].name: bad");
  // No position (an empty file): line 1, column 1.
  EXPECT_EQ(r.Error(YAML::Mark::null_mark(), "pipeline", "x").message(), "p.yaml:1:1: pipeline: x");
  EXPECT_EQ(r.OptionError("--param", "tag", "nope").message(), "p.yaml: --param tag: nope");
}

// yaml-cpp's LoadAll never returns on a file holding just "," (and grows its
// memory meanwhile); found by tests/fuzz/spec_fuzzer. It holds no document.
TEST(YamlReaderTest, AFileOnWhichYamlCppLoadAllNeverReturnsIsRefused) {
  EXPECT_EQ(std::string(YamlReader(",", "p.yaml").LoadDocument().status().message()),
            "p.yaml:1:1: pipeline: the file is empty; expected a mapping with a 'stages' list");
  EXPECT_FALSE(YamlReader(",p ta<(tho cuF); toucht, who: m", "p.yaml").LoadDocument().ok());
}

TEST(YamlReaderTest, LoadDocumentWantsExactlyOneDocument) {
  EXPECT_EQ(YamlReader("", "p.yaml").LoadDocument().status().message(),
            "p.yaml:1:1: pipeline: the file is empty; expected a mapping with a 'stages' list");
  EXPECT_EQ(YamlReader("a: 1\n---\nb: 2\n", "p.yaml").LoadDocument().status().message(),
            "p.yaml:3:1: pipeline: the file holds 2 YAML documents; a pipeline is a single "
            "document");
  absl::StatusOr<YAML::Node> one = YamlReader("a: 1\n", "p.yaml").LoadDocument();
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_TRUE(one->IsMap());
}

TEST(YamlReaderTest, SyntaxErrorsNameTheLikelyCauseOfAnUnquotedVariableInAFlow) {
  const absl::Status s = YamlReader("a: [x, ${y}]\n", "p.yaml").LoadDocument().status();
  EXPECT_THAT(Message(s), HasSubstr("p.yaml:1:"));
  EXPECT_THAT(Message(s), HasSubstr(": yaml: syntax error: "));
  EXPECT_THAT(Message(s), HasSubstr("quote strings that hold '${...}'"));
}

TEST(YamlReaderTest, EntriesRefuseDuplicateAndNonStringKeys) {
  const YamlReader r("", "p.yaml");
  std::vector<Entry> out;
  const YAML::Node dup = YAML::Load("env: {}\nname: x\nenv: {}\n");
  EXPECT_EQ(r.Entries(dup, dup.Mark(), "", &out).message(),
            "p.yaml:3:1: env: duplicate key 'env' (first given on line 1)");
  out.clear();
  const YAML::Node list = YAML::Load("[1, 2]");
  EXPECT_EQ(r.Entries(list, list.Mark(), "stages[0]", &out).message(),
            "p.yaml:1:1: stages[0]: expected a mapping, got a list");
  out.clear();
  const YAML::Node ok = YAML::Load("stage:\n  a: 1\n  b: 2\n");
  ASSERT_TRUE(r.Entries(ok["stage"], ok.Mark(), "stage", &out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].key, "b");
  EXPECT_EQ(out[1].field, "stage.b");
  EXPECT_EQ(out[1].key_mark.line, 2);
  EXPECT_EQ(r.CheckAllowed(out, "stage", {"a"}).message(),
            "p.yaml:3:3: stage.b: unknown field 'b' (allowed: a)");
}

TEST(YamlReaderTest, BoolsAreTrueOrFalseOnly) {
  const YamlReader r("", "p.yaml");
  const YAML::Node n = YAML::Load("x: yes\ny: true\n");
  std::vector<Entry> out;
  ASSERT_TRUE(r.Entries(n, n.Mark(), "", &out).ok());
  bool b = false;
  EXPECT_EQ(r.GetBool(out[0], &b).message(), "p.yaml:1:4: x: expected true or false, got 'yes'");
  ASSERT_TRUE(r.GetBool(out[1], &b).ok());
  EXPECT_TRUE(b);
}

TEST(YamlReaderTest, LocateFindsAByteInsideALiteralBlockAndAQuotedString) {
  const std::string yaml = "shell: |\n  echo hi\n  run ${x}\nquoted: \"a ${y}\"\n";
  const YamlReader r(yaml, "p.yaml");
  const YAML::Node root = YAML::Load(yaml);
  Text block;
  ASSERT_TRUE(r.GetText(root["shell"], root.Mark(), "shell", &block).ok());
  const YAML::Mark in_block = r.Locate(block, block.value.find("${"));
  EXPECT_EQ(in_block.line + 1, 3);
  EXPECT_EQ(in_block.column + 1, 7);
  Text quoted;
  ASSERT_TRUE(r.GetText(root["quoted"], root.Mark(), "quoted", &quoted).ok());
  const YAML::Mark in_quotes = r.Locate(quoted, quoted.value.find("${"));
  EXPECT_EQ(in_quotes.line + 1, 4);
  EXPECT_EQ(in_quotes.column + 1, 12);
}

TEST(YamlReaderTest, TextListsKeepEachItemsPositionAndField) {
  const YamlReader r("", "p.yaml");
  const YAML::Node n = YAML::Load("tags:\n  - a\n  - b\n");
  std::vector<Text> out;
  ASSERT_TRUE(r.GetTextList(n["tags"], n.Mark(), "tags", "a list of tags", &out).ok());
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].value, "b");
  EXPECT_EQ(out[1].field, "tags[1]");
  EXPECT_EQ(out[1].mark.line + 1, 3);
  const YAML::Node scalar = YAML::Load("tags: a\n");
  EXPECT_EQ(r.GetTextList(scalar["tags"], scalar.Mark(), "tags", "a list of tags", &out).message(),
            "p.yaml:1:7: tags: expected a list of tags, got a string");
}

}  // namespace
}  // namespace musafarm::pipeline
