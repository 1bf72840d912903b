#include "pipeline/cell_values.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace musafarm::pipeline {
namespace {

// The axis and value of `key` checked against `p`; its axis index in `*axis`.
absl::Status CheckCell(const YamlReader& r, absl::string_view flag, const std::string& key,
                       const CellKey& k, const Pipeline& p, int* axis) {
  *axis = AxisIndex(p, k.axis);
  if (*axis < 0) {
    return r.OptionError(flag, key,
                         absl::StrCat("'", k.axis, "' is not a matrix axis (axes: ",
                                      absl::StrJoin(AxisNames(p), ", "), ")"));
  }
  const Axis& a = p.axes[*axis];
  if (!Contains(a.values, k.value) && !Contains(a.file_values, k.value)) {
    return r.OptionError(flag, key,
                         absl::StrCat("'", k.value, "' is not a value of axis ", k.axis, " (",
                                      absl::StrJoin(a.values, ", "), ")"));
  }
  return absl::OkStatus();
}

// The per-cell entry of `name` that matches `cell`, or nullptr; an error when
// two do (values by two axes).
absl::StatusOr<const CellValue*> Match(const YamlReader& r, absl::string_view flag,
                                       const std::vector<CellValue>& values, const Cell& cell,
                                       const std::string& name, bool from_file,
                                       absl::string_view where) {
  const CellValue* found = nullptr;
  for (const CellValue& v : values) {
    if (v.name != name || v.from_file != from_file || cell.values[v.axis] != v.axis_value) {
      continue;
    }
    if (found != nullptr) {
      return r.OptionError(flag, v.key,
                           absl::StrCat("'", name, "' also has ", found->key,
                                        ": per-cell values by two axes meet", where,
                                        "; give its values by one axis"));
    }
    found = &v;
  }
  return found;
}

}  // namespace

std::optional<CellKey> ParseCellKey(absl::string_view key) {
  const size_t at = key.find('@');
  if (at == absl::string_view::npos) return std::nullopt;
  const size_t eq = key.find('=', at);
  if (at == 0 || eq == absl::string_view::npos || eq == at + 1 || eq + 1 == key.size()) {
    return std::nullopt;
  }
  return CellKey{std::string(key.substr(0, at)), std::string(key.substr(at + 1, eq - at - 1)),
                 std::string(key.substr(eq + 1))};
}

std::string CellKeyName(absl::string_view name, absl::string_view axis, absl::string_view value) {
  return absl::StrCat(name, "@", axis, "=", value);
}

absl::Status AddCellParam(const YamlReader& r, const std::string& key, const std::string& value,
                          Pipeline* p) {
  const std::optional<CellKey> k = ParseCellKey(key);
  if (!k.has_value()) {
    return r.OptionError("--param", key, "expected NAME@AXIS=VALUE for a per-cell value");
  }
  if (FindParam(*p, k->name) == nullptr) {
    return r.OptionError("--param", key,
                         absl::StrCat("'", k->name, "' is not declared in the pipeline's 'params' ",
                                      Declared(ParamNames(*p), "params")));
  }
  int axis = -1;
  if (absl::Status s = CheckCell(r, "--param", key, *k, *p, &axis); !s.ok()) return s;
  p->cell_params.push_back({k->name, axis, k->value, key, value});
  return absl::OkStatus();
}

absl::Status AddCellSecret(const YamlReader& r, const std::string& key, Pipeline* p) {
  const std::optional<CellKey> k = ParseCellKey(key);
  if (!k.has_value()) {
    return r.OptionError("--secret", key, "expected NAME@AXIS=VALUE for a per-cell value");
  }
  if (!Contains(p->secrets, k->name)) {
    return r.OptionError("--secret", key,
                         absl::StrCat("'", k->name, "' is not declared in the pipeline's 'secrets' ",
                                      Declared(p->secrets, "secrets")));
  }
  int axis = -1;
  if (absl::Status s = CheckCell(r, "--secret", key, *k, *p, &axis); !s.ok()) return s;
  p->cell_secrets.push_back({k->name, axis, k->value, key, ""});
  return absl::OkStatus();
}

absl::Status AddFileCellParam(const YamlReader& r, const Entry& e, Pipeline* p) {
  const std::optional<CellKey> k = ParseCellKey(e.key);
  if (!k.has_value() || !AllOf(k->axis, IsNameChar) || !AllOf(k->value, IsCellValueChar)) {
    return r.Error(e.key_mark, e.field,
                   absl::StrCat("'", e.key, "' is neither a param name nor NAME@AXIS=VALUE, a "
                                "per-cell default"));
  }
  if (FindParam(*p, k->name) == nullptr) {
    return r.Error(e.key_mark, e.field,
                   absl::StrCat("per-cell default of '", k->name,
                                "', which is not declared above it in 'params'"));
  }
  const int axis = AxisIndex(*p, k->axis);
  if (axis < 0) {
    return r.Error(e.key_mark, e.field,
                   absl::StrCat("'", k->axis, "' is not a matrix axis (axes: ",
                                absl::StrJoin(AxisNames(*p), ", "), ")"));
  }
  if (!e.value.IsScalar()) {
    return r.Error(MarkOf(e.value, e.key_mark), e.field,
                   absl::StrCat("expected a default value (a string), got ", KindOf(e.value)));
  }
  p->cell_params.push_back({k->name, axis, k->value, e.key, e.value.Scalar(), true});
  return absl::OkStatus();
}

absl::StatusOr<const CellValue*> CellParamSource(const YamlReader& r, const Pipeline& p,
                                                 const Cell& cell, const Param& param,
                                                 absl::string_view where) {
  absl::StatusOr<const CellValue*> given =
      Match(r, "--param", p.cell_params, cell, param.name, false, where);
  if (!given.ok() || *given != nullptr) return given;
  if (param.given) return nullptr;
  return Match(r, "--param", p.cell_params, cell, param.name, true, where);
}

absl::StatusOr<std::string> CellParamValue(const YamlReader& r, const Pipeline& p,
                                           const Cell& cell, const Param& param,
                                           absl::string_view where) {
  absl::StatusOr<const CellValue*> source = CellParamSource(r, p, cell, param, where);
  if (!source.ok()) return source.status();
  return *source == nullptr ? param.value : (*source)->value;
}

absl::Status SetSecretSources(const YamlReader& r, const Pipeline& p, const Cell& cell,
                              absl::string_view where, v1::StageSpec* run) {
  for (const std::string& name : run->secrets()) {
    absl::StatusOr<const CellValue*> v =
        Match(r, "--secret", p.cell_secrets, cell, name, false, where);
    if (!v.ok()) return v.status();
    if (*v != nullptr) (*run->mutable_secret_sources())[name] = (*v)->key;
  }
  return absl::OkStatus();
}

}  // namespace musafarm::pipeline
