#pragma once

// Matrix expansion: the `matrix` axes, `exclude` and `include`, and the
// submitter's --axis values, into the cells a pipeline runs in.

#include <vector>

#include "absl/status/status.h"
#include "pipeline/model.h"
#include "pipeline/spec.h"
#include "pipeline/yaml_reader.h"

namespace musafarm::pipeline {

class MatrixParser {
 public:
  explicit MatrixParser(const YamlReader& r) : r_(r) {}

  // Reads the top-level `matrix` entry `e` into p->axes, p->file_cells (as the
  // file gives them) and p->cells (after options.axes), and p->include_vars.
  absl::Status ParseMatrix(const Entry& e, const ExpandOptions& options, Pipeline* p) const;
  // A pipeline without `matrix`: one cell without axes; any --axis is an error.
  absl::Status NoMatrix(const ExpandOptions& options, Pipeline* p) const;

 private:
  absl::Status ApplyAxisOptions(const ExpandOptions& options, Pipeline* p) const;
  absl::Status BuildCells(const Entry& e, const Entry* exclude, const Entry* include, bool file,
                          Pipeline* p, std::vector<Cell>* cells) const;
  absl::Status ParseExclude(const Entry& e, const Pipeline& p, std::vector<Cell>* cells) const;
  absl::Status ParseInclude(const Entry& e, bool file, Pipeline* p, std::vector<Cell>* cells) const;

  const YamlReader& r_;
};

// "'KEY' is not a matrix axis (axes: ...)"; `when` and --axis errors share it.
std::string NotAnAxis(const Pipeline& p, absl::string_view key);

}  // namespace musafarm::pipeline
