#include "cli/yaml_output.h"

#include <regex>

#include "absl/strings/ascii.h"
#include "common/utf8.h"
#include "yaml-cpp/yaml.h"

namespace musafarm::cli {
namespace {

// Whether a plain (unquoted) scalar `s` would resolve to a non-string in
// YAML 1.1 or 1.2 (yaml-cpp, PyYAML and Go's yaml all read YAML 1.1 booleans
// such as "yes"), so that it must be quoted to stay a string.
bool ReadsAsNonString(const std::string& s) {
  if (s.empty() || s == "~") return true;
  const std::string lower = absl::AsciiStrToLower(s);
  for (const char* word : {"null", "true", "false", "yes", "no", "on", "off", "y", "n"}) {
    if (lower == word) return true;
  }
  // Numbers: decimal, octal, hex, floats, infinities and NaN, with an optional sign, and
  // YAML 1.1's digits with underscores and sexagesimal forms (190:20:30).
  static const std::regex kNumber(
      "[-+]?(\\.[0-9]+|[0-9][0-9_]*(\\.[0-9_]*)?)([eE][-+]?[0-9]+)?|"
      "0[xX][0-9a-fA-F_]+|0[oO]?[0-7_]+|0[bB][01_]+|[-+]?\\.(inf|Inf|INF)|\\.(nan|NaN|NAN)|"
      "[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\\.[0-9_]*)?");
  // YAML 1.1 timestamps, which PyYAML reads as datetimes: our RFC 3339 times.
  static const std::regex kDate("[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt \t].*)?");
  return std::regex_match(s, kNumber) || std::regex_match(s, kDate);
}

void Emit(YAML::Emitter& out, const Json& j) {
  switch (j.type()) {
    case Json::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, value] : j.items()) {
        out << YAML::Key;
        Emit(out, Json(key));
        out << YAML::Value;
        Emit(out, value);
      }
      out << YAML::EndMap;
      return;
    case Json::value_t::array:
      out << YAML::BeginSeq;
      for (const Json& item : j) Emit(out, item);
      out << YAML::EndSeq;
      return;
    case Json::value_t::string: {
      const std::string s = CoerceUtf8(j.get_ref<const std::string&>());
      if (ReadsAsNonString(s)) out << YAML::DoubleQuoted;
      out << s;
      return;
    }
    case Json::value_t::boolean:
      out << j.get<bool>();
      return;
    case Json::value_t::number_integer:
      out << j.get<int64_t>();
      return;
    case Json::value_t::number_unsigned:
      out << j.get<uint64_t>();
      return;
    case Json::value_t::number_float:
      out << j.get<double>();
      return;
    default:  // null, and a discarded value (what DumpJson prints as null)
      out << YAML::Null;
      return;
  }
}

}  // namespace

std::string JsonToYaml(const Json& json) {
  YAML::Emitter out;
  out.SetBoolFormat(YAML::TrueFalseBool);
  out.SetNullFormat(YAML::LowerNull);
  out << YAML::BeginDoc;
  Emit(out, json);
  std::string text = out.c_str();
  if (text.empty() || text.back() != '\n') text += '\n';
  return text;
}

}  // namespace musafarm::cli
