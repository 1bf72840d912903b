#include "cli/yaml_output.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "yaml-cpp/yaml.h"

namespace musafarm::cli {
namespace {

// `node` back as JSON: quoted scalars ("!" tag) are strings; plain ones are
// typed as YAML's core schema reads them.
Json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      Json j = Json::object();
      for (const auto& kv : node) j[kv.first.as<std::string>()] = ToJson(kv.second);
      return j;
    }
    case YAML::NodeType::Sequence: {
      Json j = Json::array();
      for (const YAML::Node& item : node) j.push_back(ToJson(item));
      return j;
    }
    case YAML::NodeType::Scalar: {
      const std::string s = node.as<std::string>();
      if (node.Tag() == "!") return s;
      if (s == "true" || s == "false") return s == "true";
      int64_t i;
      if (YAML::convert<int64_t>::decode(node, i)) return i;
      double d;
      if (YAML::convert<double>::decode(node, d)) return d;
      return s;
    }
    default:
      return nullptr;
  }
}

TEST(YamlOutputTest, ADocumentReadsBackAsTheSameJson) {
  const Json json = Json::parse(R"({
    "id": "7", "name": "nightly: dev", "state": "JOB_STATE_FAILED", "createdUs": "1699999970000000",
    "createdTime": "2023-11-14T22:12:50Z", "done": true, "attempts": 2, "ratio": 0.5,
    "empty": "", "words": ["true", "no", "null", "~", "1e3", "0x1f", "on", "-", "a b", "#x", "*y"],
    "nested": {"y": [], "n": {}, "quote": "it's \"here\"", "lines": "one\ntwo\n"},
    "missing": null
  })");
  const std::string yaml = JsonToYaml(json);
  EXPECT_EQ(yaml.rfind("---", 0), 0u) << yaml;
  EXPECT_EQ(yaml.back(), '\n');
  EXPECT_EQ(ToJson(YAML::Load(yaml)), json) << yaml;
}

TEST(YamlOutputTest, NumbersAndBooleansAsTextAreQuoted) {
  EXPECT_EQ(JsonToYaml(Json::parse(R"({"a": "12", "b": 12, "c": "yes", "d": true})")),
            "---\na: \"12\"\nb: 12\nc: \"yes\"\nd: true\n");
}

TEST(YamlOutputTest, TextThatIsNotUtf8BecomesReplacementCharacters) {
  Json j = Json::object();
  j["name"] = std::string("bad \xff byte");
  EXPECT_EQ(YAML::Load(JsonToYaml(j))["name"].as<std::string>(), "bad \xef\xbf\xbd byte");
}

}  // namespace
}  // namespace musafarm::cli
