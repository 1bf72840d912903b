#include "pipeline/yaml_reader.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/parser.h>

#include <map>
#include <sstream>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"

namespace musafarm::pipeline {

std::string Child(absl::string_view parent, absl::string_view key) {
  return parent.empty() ? std::string(key) : absl::StrCat(parent, ".", key);
}

std::string Item(absl::string_view parent, size_t i) { return absl::StrCat(parent, "[", i, "]"); }

const char* KindOf(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return "a string";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

// A null value's mark points at the token after it (often the next line), so
// errors about it point at its key instead.
YAML::Mark MarkOf(const YAML::Node& node, const YAML::Mark& fallback) {
  if (!node.IsDefined() || node.IsNull() || node.Mark().is_null()) return fallback;
  return node.Mark();
}

namespace {

// Counts a file's documents as YAML::LoadAll would keep them (up to the first
// null one), but at most kMaxDocuments: yaml-cpp 0.7's LoadAll never returns on
// some inputs (a file holding just "," yields documents without end, growing
// memory; found by tests/fuzz/spec_fuzzer), and one is all a pipeline may have.
constexpr int kMaxDocuments = 100;

class DocumentCounter : public YAML::EventHandler {
 public:
  // Reads documents until a null one, the end, or kMaxDocuments.
  void Count(YAML::Parser& parser) {
    while (count_ < kMaxDocuments) {
      root_null_ = false;
      root_seen_ = false;
      if (!parser.HandleNextDocument(*this) || root_null_) return;
      ++count_;
    }
  }
  int count() const { return count_; }
  const YAML::Mark& second() const { return second_; }

  void OnDocumentStart(const YAML::Mark&) override {}
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { Root(mark, true); }
  void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override { Root(mark, false); }
  void OnScalar(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                const std::string&) override {
    Root(mark, false);
  }
  void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    Root(mark, false);
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    Root(mark, false);
  }
  void OnMapEnd() override {}

 private:
  void Root(const YAML::Mark& mark, bool null) {
    if (root_seen_) return;
    root_seen_ = true;
    root_null_ = null;
    if (count_ == 1) second_ = mark;   // where the second document's root starts
  }

  int count_ = 0;
  bool root_seen_ = false;
  bool root_null_ = false;
  YAML::Mark second_ = YAML::Mark::null_mark();
};

}  // namespace

absl::StatusOr<YAML::Node> YamlReader::LoadDocument(absl::string_view what,
                                                    absl::string_view if_empty) const {
  DocumentCounter counter;
  YAML::Node doc;
  try {
    std::istringstream in{std::string(yaml_)};
    YAML::Parser parser(in);
    counter.Count(parser);
    if (counter.count() == 1) doc = YAML::Load(std::string(yaml_));
  } catch (const YAML::Exception& e) {
    return SyntaxError(e);
  }
  if (counter.count() == 0) {
    if (if_empty.empty()) return YAML::Node(YAML::NodeType::Null);
    return Error(YAML::Mark::null_mark(), what, if_empty);
  }
  if (counter.count() > 1) {
    return Error(counter.second(), what,
                 absl::StrCat("the file holds ", counter.count() < kMaxDocuments ? "" : "at least ",
                              counter.count(), " YAML documents; a ", what,
                              " is a single document"));
  }
  return doc;
}

absl::Status YamlReader::SyntaxError(const YAML::Exception& e) const {
  // An unquoted ${var} inside [ ] or { } ends the flow collection early and
  // yaml-cpp only says "end of ... flow not found"; name the likely cause.
  std::string hint;
  if (e.mark.line >= 0) {
    const std::vector<absl::string_view> lines = absl::StrSplit(yaml_, '\n');
    if (static_cast<size_t>(e.mark.line) < lines.size() &&
        absl::StrContains(lines[e.mark.line], "${") && absl::StrContains(e.msg, "flow")) {
      hint = " (inside [ ] or { }, quote strings that hold '${...}')";
    }
  }
  return Error(e.mark, "yaml", absl::StrCat("syntax error: ", e.msg, hint));
}

absl::Status YamlReader::Entries(const YAML::Node& node, const YAML::Mark& fallback,
                                 absl::string_view field, std::vector<Entry>* out) const {
  if (!node.IsMap()) {
    return Error(MarkOf(node, fallback), field,
                 absl::StrCat("expected a mapping, got ", KindOf(node)));
  }
  // yaml-cpp keeps both entries of a repeated key and lookups see only the
  // first; a silently ignored second `env:` would be a nasty surprise.
  std::map<std::string, int> first_line;
  // The iterator's operator-> hands out a temporary, so take each pair by value.
  for (const auto& kv : node) {
    const YAML::Node key = kv.first;
    if (!key.IsScalar()) {
      return Error(MarkOf(key, fallback), field,
                   absl::StrCat("keys must be strings, got ", KindOf(key)));
    }
    Entry e{key.Scalar(), key.Mark(), kv.second, Child(field, key.Scalar())};
    auto [pos, inserted] = first_line.emplace(e.key, e.key_mark.line + 1);
    if (!inserted) {
      return Error(
          e.key_mark, e.field,
          absl::StrCat("duplicate key '", e.key, "' (first given on line ", pos->second, ")"));
    }
    out->push_back(std::move(e));
  }
  return absl::OkStatus();
}

absl::Status YamlReader::CheckAllowed(const std::vector<Entry>& entries, absl::string_view field,
                                      const std::vector<std::string>& allowed) const {
  for (const Entry& e : entries) {
    bool known = false;
    for (const std::string& a : allowed) known = known || a == e.key;
    if (!known) {
      return Error(e.key_mark, Child(field, e.key),
                   absl::StrCat("unknown field '", e.key,
                                "' (allowed: ", absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status YamlReader::GetString(const YAML::Node& node, const YAML::Mark& fallback,
                                   absl::string_view field, std::string* out) const {
  if (!node.IsScalar()) {
    return Error(MarkOf(node, fallback), field,
                 absl::StrCat("expected a string, got ", KindOf(node)));
  }
  *out = node.Scalar();
  return absl::OkStatus();
}

absl::Status YamlReader::GetText(const YAML::Node& node, const YAML::Mark& fallback,
                                 absl::string_view field, Text* out) const {
  MF_RETURN_IF_ERROR(GetString(node, fallback, field, &out->value));
  out->mark = node.Mark();
  out->field = std::string(field);
  return absl::OkStatus();
}

absl::Status YamlReader::GetTextList(const YAML::Node& node, const YAML::Mark& fallback,
                                     absl::string_view field, const char* what,
                                     std::vector<Text>* out) const {
  if (!node.IsSequence()) {
    return Error(MarkOf(node, fallback), field,
                 absl::StrCat("expected ", what, ", got ", KindOf(node)));
  }
  const YAML::Mark list_mark = MarkOf(node, fallback);
  for (size_t i = 0; i < node.size(); ++i) {
    Text t;
    MF_RETURN_IF_ERROR(GetText(node[i], list_mark, Item(field, i), &t));
    out->push_back(std::move(t));
  }
  return absl::OkStatus();
}

// `what` names the keys in errors: "environment variable", "build argument".
// YAML's true/false (the core schema's spellings). yaml-cpp would also take
// yes/no/on/off, which YAML 1.2 reads as strings; refuse them rather than guess.
absl::Status YamlReader::GetBool(const Entry& e, bool* out) const {
  const YAML::Mark mark = MarkOf(e.value, e.key_mark);
  if (!e.value.IsScalar()) {
    return Error(mark, e.field, absl::StrCat("expected true or false, got ", KindOf(e.value)));
  }
  const std::string& text = e.value.Scalar();
  if (text == "true" || text == "True" || text == "TRUE") {
    *out = true;
  } else if (text == "false" || text == "False" || text == "FALSE") {
    *out = false;
  } else {
    return Error(mark, e.field, absl::StrCat("expected true or false, got '", text, "'"));
  }
  return absl::OkStatus();
}

YAML::Mark YamlReader::Locate(const Text& t, size_t offset) const {
  const YAML::Mark m = t.mark;
  if (m.pos < 0 || static_cast<size_t>(m.pos) >= yaml_.size()) return m;
  const absl::string_view value = t.value;
  const char first = yaml_[m.pos];
  if (first == '|') {
    size_t k = 0;
    size_t line_start = 0;
    for (size_t i = 0; i < offset && i < value.size(); ++i) {
      if (value[i] == '\n') {
        ++k;
        line_start = i + 1;
      }
    }
    size_t line_end = value.find('\n', line_start);
    if (line_end == absl::string_view::npos) line_end = value.size();
    const absl::string_view value_line = value.substr(line_start, line_end - line_start);
    // Content line k is file line m.line + 1 + k.
    size_t pos = m.pos;
    for (size_t n = 0; n <= k; ++n) {
      pos = yaml_.find('\n', pos);
      if (pos == absl::string_view::npos) return m;
      ++pos;
    }
    size_t end = yaml_.find('\n', pos);
    if (end == absl::string_view::npos) end = yaml_.size();
    absl::string_view file_line = yaml_.substr(pos, end - pos);
    if (!file_line.empty() && file_line.back() == '\r') file_line.remove_suffix(1);
    if (file_line.size() < value_line.size() ||
        file_line.substr(file_line.size() - value_line.size()) != value_line) {
      return m;
    }
    YAML::Mark out;
    out.line = m.line + 1 + static_cast<int>(k);
    out.column = static_cast<int>(file_line.size() - value_line.size() + offset - line_start);
    out.pos = static_cast<int>(pos + out.column);
    return out;
  }
  if (value.find('\n') == absl::string_view::npos) {
    const size_t q = (first == '"' || first == '\'') ? 1 : 0;
    if (yaml_.substr(m.pos + q, value.size()) == value) {
      YAML::Mark out = m;
      out.column += static_cast<int>(q + offset);
      out.pos += static_cast<int>(q + offset);
      return out;
    }
  }
  return m;
}

}  // namespace musafarm::pipeline
