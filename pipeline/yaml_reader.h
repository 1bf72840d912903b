#pragma once

// Reading a pipeline file: YAML nodes with their positions, and errors in the
// one shape every part of the compiler reports, "FILE:LINE:COL: FIELD: what".

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/bounded_text.h"
#include "pipeline/model.h"
#include "yaml-cpp/yaml.h"

namespace musafarm::pipeline {

// A mapping entry with its key checked to be a string.
struct Entry {
  std::string key;
  YAML::Mark key_mark;
  YAML::Node value;
  std::string field;  // path of the value, e.g. "stages[0].env.PY"
};

// "parent.key", or "key" at the top level.
std::string Child(absl::string_view parent, absl::string_view key);
// "parent[i]".
std::string Item(absl::string_view parent, size_t i);
// "a mapping", "a list", ... for "expected X, got Y".
const char* KindOf(const YAML::Node& node);
// A null value's mark points at the token after it (often the next line), so
// errors about it point at its key instead.
YAML::Mark MarkOf(const YAML::Node& node, const YAML::Mark& fallback);

// Holds the source text and its name for messages. Every method is const, so
// one reader serves every part of a compilation. yaml-cpp throws on syntax
// errors: LoadDocument catches them, and ParseAndExpand catches any other
// (SyntaxError turns one into a Status), so none leaves the library.
class YamlReader {
 public:
  static constexpr size_t kMaxErrorBytes = 4096;
  YamlReader(absl::string_view yaml, absl::string_view file) : yaml_(yaml), file_(file) {}

  const std::string& file() const { return file_; }

  // The file's one YAML document: an error if it is empty, holds several, or
  // is not YAML. `what` names the file's kind in messages ("pipeline",
  // "config", "policy"); `if_empty` is the error for an empty file, or empty
  // to accept one (a null node is returned). Every reader of YAML files uses
  // this, never YAML::LoadAll, which never returns on some inputs.
  absl::StatusOr<YAML::Node> LoadDocument(
      absl::string_view what = "pipeline",
      absl::string_view if_empty = "the file is empty; expected a mapping with a 'stages' list") const;
  absl::Status SyntaxError(const YAML::Exception& e) const;

  absl::Status Error(const YAML::Mark& mark, absl::string_view field,
                     absl::string_view what) const {
    const int line = mark.line >= 0 ? mark.line + 1 : 1;
    const int col = mark.column >= 0 ? mark.column + 1 : 1;
    // Printable: an error may quote a value from the file or a flag, and is
    // printed to a terminal and the coordinator's log (issue 12).
    return absl::InvalidArgumentError(
        Printable(absl::StrCat(file_, ":", line, ":", col, ": ", field, ": ", what), kMaxErrorBytes));
  }

  // An error about a submit option, which has no place in the file:
  // "FILE: --param NAME: what".
  absl::Status OptionError(absl::string_view flag, absl::string_view name,
                           absl::string_view what) const {
    return absl::InvalidArgumentError(
        Printable(absl::StrCat(file_, ": ", flag, " ", name, ": ", what), kMaxErrorBytes));
  }

  // The entries of mapping `node` (`fallback` locates it when null), keys
  // checked to be strings and unique.
  absl::Status Entries(const YAML::Node& node, const YAML::Mark& fallback, absl::string_view field,
                       std::vector<Entry>* out) const;
  // An error naming the first entry whose key is not in `allowed`.
  absl::Status CheckAllowed(const std::vector<Entry>& entries, absl::string_view field,
                            const std::vector<std::string>& allowed) const;
  absl::Status GetString(const YAML::Node& node, const YAML::Mark& fallback,
                         absl::string_view field, std::string* out) const;
  absl::Status GetText(const YAML::Node& node, const YAML::Mark& fallback, absl::string_view field,
                       Text* out) const;
  absl::Status GetTextList(const YAML::Node& node, const YAML::Mark& fallback,
                           absl::string_view field, const char* what, std::vector<Text>* out) const;
  absl::Status GetBool(const Entry& e, bool* out) const;

  // Where in the file byte `offset` of `t`'s value is. Exact for plain and quoted
  // one-line scalars without escapes and for literal blocks ('|'), which is where
  // long shell scripts live; otherwise the start of the scalar.
  YAML::Mark Locate(const Text& t, size_t offset) const;

 private:
  const absl::string_view yaml_;
  const std::string file_;
};

}  // namespace musafarm::pipeline
