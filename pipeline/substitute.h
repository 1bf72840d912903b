#pragma once

// Substitution of `${name}`, `${name:-default}`, `${matrix.name}` and `$${`
// in a Text, with errors that point at the reference's own line and column.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/repeated_field.h"
#include "pipeline/model.h"
#include "pipeline/shell_quote.h"
#include "pipeline/yaml_reader.h"

namespace musafarm::pipeline {

class Substituter {
 public:
  // `secrets`: the declared secret names, so that an unknown `${NAME}` naming
  // one says why it is not substituted.
  Substituter(const YamlReader& r, std::vector<std::string> secrets)
      : r_(r), secrets_(std::move(secrets)) {}

  // `where` ends messages, e.g. " in cell (dev, 3.8)".
  absl::StatusOr<std::string> Substitute(const Text& t, const std::vector<Var>& vars,
                                         absl::string_view where) const;
  // As Substitute, for a /bin/sh script: each reference's value (a default's
  // too) is written as data, quoted for where it stands (ShellQuoter), so
  // that no value runs as code; an error where it cannot be quoted safely.
  absl::StatusOr<std::string> SubstituteShell(const Text& t, const std::vector<Var>& vars,
                                              absl::string_view where) const;
  // Substitutes each of `texts` onto `out`; with `non_empty`, an empty result
  // is an error.
  absl::Status SubstituteAll(const std::vector<Text>& texts, const std::vector<Var>& vars,
                             absl::string_view where, bool non_empty,
                             google::protobuf::RepeatedPtrField<std::string>* out) const;
  // An error about `t`'s substituted value; when a variable made the value, the
  // message says so and names the cell, as for `needs`.
  absl::Status Invalid(const Text& t, absl::string_view where, absl::string_view what) const;

  const YamlReader& reader() const { return r_; }

 private:
  absl::Status SubstituteSpan(const Text& t, size_t begin, size_t end, const std::vector<Var>& vars,
                              absl::string_view where, std::string* out,
                              ShellQuoter* quoter = nullptr) const;

  const YamlReader& r_;
  const std::vector<std::string> secrets_;
};

}  // namespace musafarm::pipeline
