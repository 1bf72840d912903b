#pragma once

// Reading a pipeline's `options:` (option_decl.h), checked against submit's
// own option names and against the params, axes and secrets they set.

#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "pipeline/model.h"
#include "pipeline/option_decl.h"
#include "pipeline/yaml_reader.h"

namespace musafarm::pipeline {

// The option names `musafarm submit` keeps for itself, now or next: a
// pipeline option may use none of them. Long names without "--", short ones
// as one letter.
const std::vector<std::string>& ReservedLongOptions();
const std::vector<std::string>& ReservedShortOptions();

class OptionsParser {
 public:
  explicit OptionsParser(const YamlReader& r) : r_(r) {}

  // Reads the top-level `options` entry `e` into p->options; the params,
  // axes and secrets it names must be declared in `p`.
  absl::Status Parse(const Entry& e, Pipeline* p) const;

 private:
  absl::Status ParseOne(const YAML::Node& node, const YAML::Mark& fallback,
                        const std::string& field, const Pipeline& p, OptionDecl* o) const;
  absl::Status CheckTarget(const Entry& e, OptionDecl::Kind kind, const std::string& target,
                           const Pipeline& p, OptionDecl* o) const;
  absl::Status ParseFlag(const Entry& e, const Pipeline& p, OptionDecl* o) const;

  const YamlReader& r_;
};

}  // namespace musafarm::pipeline
