#pragma once

// Per-cell values (docs/pipeline.md, "Per-cell values"): a param or secret
// whose value differs by matrix cell, as torch_musa's build_all.sh passes a
// different wheel URL per Python version and build_dev.sh different package
// URLs per GPU architecture. They travel as params and secrets whose names
// carry the cell:
//
//   NAME@AXIS=VALUE      e.g. TORCH_WHL_URL@python=3.8, tag@arch=qy2
//
// (`musafarm submit --torch_whl_url 3.8=URL,3.9=URL` makes them). In the
// cells where AXIS is VALUE the value replaces NAME's: a param's as `${NAME}`,
// a secret's as the value the task receives under NAME (StageSpec.
// secret_sources says which job secret that is), so a per-cell secret reaches
// only that cell's tasks. A `when` sees a param's job-wide value.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "musafarm/v1/farm.pb.h"
#include "pipeline/model.h"
#include "pipeline/yaml_reader.h"

namespace musafarm::pipeline {

struct CellKey {
  std::string name;
  std::string axis;
  std::string value;
};

// "TORCH_WHL_URL@python=3.8" -> {TORCH_WHL_URL, python, 3.8}; nullopt for a
// name without '@' or not of that form.
std::optional<CellKey> ParseCellKey(absl::string_view key);
std::string CellKeyName(absl::string_view name, absl::string_view axis, absl::string_view value);

// Records per-cell param `key` (= `value`) or per-cell secret `key` on `p`.
// Errors (InvalidArgument, "FILE: --param KEY: ...") when the name is not
// declared, AXIS is not an axis or VALUE is on it neither in the file nor
// after --axis. A value for a cell the job does not have is kept and unused
// (build_all.sh passes every Python's URL whichever it builds).
absl::Status AddCellParam(const YamlReader& r, const std::string& key, const std::string& value,
                          Pipeline* p);
absl::Status AddCellSecret(const YamlReader& r, const std::string& key, Pipeline* p);

// `params:` entry `NAME@AXIS=VALUE: default` of the file: NAME's default in
// the cells where AXIS is VALUE (e.g. `pytorch_tag@recipe=v2.0.1: v2.2.0`).
// NAME must be declared above it and AXIS be an axis; VALUE may be a value
// only --axis brings in.
absl::Status AddFileCellParam(const YamlReader& r, const Entry& e, Pipeline* p);

// The value `param` has in `cell`, first found of: the submitter's per-cell
// value, the submitter's value, the file's per-cell default, the file's
// default. An error when values by two axes both match the cell.
absl::StatusOr<std::string> CellParamValue(const YamlReader& r, const Pipeline& p,
                                           const Cell& cell, const Param& param,
                                           absl::string_view where);
// The per-cell entry that gives `param` its value in `cell` (as
// CellParamValue decides), or nullptr when the job-wide value does.
absl::StatusOr<const CellValue*> CellParamSource(const YamlReader& r, const Pipeline& p,
                                                 const Cell& cell, const Param& param,
                                                 absl::string_view where);

// For each of `run`'s secrets with a per-cell value in `cell`: its source in
// run->secret_sources.
absl::Status SetSecretSources(const YamlReader& r, const Pipeline& p, const Cell& cell,
                              absl::string_view where, v1::StageSpec* run);

}  // namespace musafarm::pipeline
