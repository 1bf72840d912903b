#include "pipeline/matrix.h"

#include <cstdint>
#include <map>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/limits.h"
#include "common/status_macros.h"

namespace musafarm::pipeline {
namespace {

absl::Status CheckCellValue(const YamlReader& r, const YAML::Mark& mark, absl::string_view field,
                            absl::string_view value) {
  if (value.size() > limits::kMaxNameBytes) {
    return r.Error(mark, field,
                   absl::StrCat("matrix value is ", value.size(), " bytes long; the limit is ",
                                limits::kMaxNameBytes, " (it becomes part of task ids)"));
  }
  if (AllOf(value, IsCellValueChar)) return absl::OkStatus();
  return r.Error(
      mark, field,
      absl::StrCat("matrix value '", value,
                   "' may hold only letters, digits and . _ : + - (it becomes part of task ids)"));
}

bool AnyOverridden(const Pipeline& p) {
  for (const Axis& a : p.axes) {
    if (a.overridden) return true;
  }
  return false;
}

}  // namespace

std::string NotAnAxis(const Pipeline& p, absl::string_view key) {
  if (p.axes.empty()) {
    return absl::StrCat("'", key, "' is not a matrix axis (the pipeline has no matrix axes)");
  }
  return absl::StrCat("'", key, "' is not a matrix axis (axes: ", ListOrNone(AxisNames(p)), ")");
}

absl::Status MatrixParser::ParseMatrix(const Entry& e, const ExpandOptions& options,
                                       Pipeline* p) const {
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(r_.Entries(e.value, e.key_mark, e.field, &entries));
  const Entry* exclude = nullptr;
  const Entry* include = nullptr;
  for (const Entry& a : entries) {
    if (a.key == "exclude") {
      exclude = &a;
      continue;
    }
    if (a.key == "include") {
      include = &a;
      continue;
    }
    if (!AllOf(a.key, IsNameChar)) {
      return r_.Error(
          a.key_mark, a.field,
          absl::StrCat("axis name '", a.key, "' may hold only letters, digits, '_' and '-'"));
    }
    if (!a.value.IsSequence()) {
      return r_.Error(MarkOf(a.value, a.key_mark), a.field,
                      absl::StrCat("expected a list of values, got ", KindOf(a.value)));
    }
    if (a.value.size() == 0) {
      return r_.Error(MarkOf(a.value, a.key_mark), a.field,
                      absl::StrCat("axis '", a.key, "' has no values, so the matrix has no cells"));
    }
    Axis axis{a.key, {}, {}, false};
    for (size_t i = 0; i < a.value.size(); ++i) {
      std::string v;
      const std::string field = Item(a.field, i);
      MF_RETURN_IF_ERROR(r_.GetString(a.value[i], a.value.Mark(), field, &v));
      MF_RETURN_IF_ERROR(CheckCellValue(r_, a.value[i].Mark(), field, v));
      for (const std::string& seen : axis.values) {
        if (seen == v) {
          return r_.Error(a.value[i].Mark(), field, absl::StrCat("duplicate value '", v, "'"));
        }
      }
      axis.values.push_back(std::move(v));
    }
    axis.file_values = axis.values;
    p->axes.push_back(std::move(axis));
  }
  MF_RETURN_IF_ERROR(ApplyAxisOptions(options, p));
  // The file's own cells, which `when` is checked against, even when --axis
  // changes the cells that run: a file valid on its own stays valid.
  MF_RETURN_IF_ERROR(BuildCells(e, exclude, include, /*file=*/true, p, &p->file_cells));
  if (!AnyOverridden(*p)) {
    p->cells = p->file_cells;
    return absl::OkStatus();
  }
  return BuildCells(e, exclude, include, /*file=*/false, p, &p->cells);
}

absl::Status MatrixParser::ApplyAxisOptions(const ExpandOptions& options, Pipeline* p) const {
  for (const auto& [name, values] : options.axes) {
    const int index = AxisIndex(*p, name);
    if (index < 0) return r_.OptionError("--axis", name, NotAnAxis(*p, name));
    Axis& axis = p->axes[index];
    if (axis.overridden) {
      return r_.OptionError("--axis", name, "given more than once (list all its values in one)");
    }
    if (values.empty()) {
      return r_.OptionError(
          "--axis", name,
          absl::StrCat("no values given (the file's values: ", ListOrNone(axis.file_values), ")"));
    }
    for (size_t i = 0; i < values.size(); ++i) {
      const std::string& v = values[i];
      if (v.empty()) return r_.OptionError("--axis", name, "empty value");
      if (v.size() > limits::kMaxNameBytes) {
        return r_.OptionError("--axis", name,
                              absl::StrCat("a value is ", v.size(), " bytes long; the limit is ",
                                           limits::kMaxNameBytes));
      }
      if (!AllOf(v, IsCellValueChar)) {
        return r_.OptionError("--axis", name,
                              absl::StrCat("value '", v,
                                           "' may hold only letters, digits and . _ : + - (it "
                                           "becomes part of task ids)"));
      }
      for (size_t j = 0; j < i; ++j) {
        if (values[j] == v) {
          return r_.OptionError("--axis", name, absl::StrCat("duplicate value '", v, "'"));
        }
      }
    }
    axis.values = values;
    axis.overridden = true;
  }
  return absl::OkStatus();
}

// The cells of the matrix `e`: the file's (`file`) or those in effect.
absl::Status MatrixParser::BuildCells(const Entry& e, const Entry* exclude, const Entry* include,
                                      bool file, Pipeline* p, std::vector<Cell>* cells) const {
  const std::string with = file ? "" : WithAxisOptions(*p);
  auto values = [file](const Axis& a) -> const std::vector<std::string>& {
    return file ? a.file_values : a.values;
  };
  int64_t count = 1;
  for (const Axis& a : p->axes) {
    count *= static_cast<int64_t>(values(a).size());
    if (count > kMaxCells) {
      return r_.Error(e.key_mark, e.field,
                      absl::StrCat("matrix has more than ", kMaxCells, " cells", with));
    }
  }
  // Cartesian product, first axis outermost: an odometer whose last digit turns fastest.
  std::vector<size_t> digit(p->axes.size(), 0);
  for (int64_t n = 0; n < count; ++n) {
    Cell cell;
    for (size_t i = 0; i < p->axes.size(); ++i) cell.values.push_back(values(p->axes[i])[digit[i]]);
    cells->push_back(std::move(cell));
    for (size_t i = p->axes.size(); i-- > 0;) {
      if (++digit[i] < values(p->axes[i]).size()) break;
      digit[i] = 0;
    }
  }

  // Exclude before include, as GitHub Actions does: an include entry may add
  // back a cell that an exclude removed.
  if (exclude != nullptr) MF_RETURN_IF_ERROR(ParseExclude(*exclude, *p, cells));
  if (include != nullptr) MF_RETURN_IF_ERROR(ParseInclude(*include, file, p, cells));
  if (cells->empty()) {
    return r_.Error(e.key_mark, e.field,
                    absl::StrCat("matrix has no cells: every cell is excluded", with));
  }
  if (static_cast<int64_t>(cells->size()) > kMaxCells) {
    return r_.Error(e.key_mark, e.field,
                    absl::StrCat("matrix has more than ", kMaxCells, " cells", with));
  }
  // Task ids join values with '-', which values may also hold: (a-b, c) and (a, b-c) collide.
  std::map<std::string, size_t> ids;
  for (size_t i = 0; i < cells->size(); ++i) {
    auto [it, inserted] = ids.emplace(absl::StrJoin((*cells)[i].values, "-"), i);
    if (!inserted) {
      return r_.Error(
          e.key_mark, e.field,
          absl::StrCat("cells ", CellDesc((*cells)[it->second]), " and ", CellDesc((*cells)[i]),
                       " have the same task id part '", it->first, "'", with));
    }
  }
  return absl::OkStatus();
}

// Entries are checked against the file's axis values. An entry naming a value
// that --axis took away matches no product cell, so it removes nothing.
absl::Status MatrixParser::ParseExclude(const Entry& e, const Pipeline& p,
                                        std::vector<Cell>* cells) const {
  if (!e.value.IsSequence()) {
    return r_.Error(MarkOf(e.value, e.key_mark), e.field,
                    absl::StrCat("expected a list of partial cells, got ", KindOf(e.value)));
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    const std::string field = Item(e.field, i);
    std::vector<Entry> keys;
    MF_RETURN_IF_ERROR(r_.Entries(e.value[i], e.value.Mark(), field, &keys));
    if (keys.empty()) {
      // An empty entry matches every cell; that is never what was meant.
      return r_.Error(e.value[i].Mark(), field, "empty entry: give at least one axis value");
    }
    std::vector<std::pair<size_t, std::string>> want;
    for (const Entry& k : keys) {
      const int axis = AxisIndex(p, k.key);
      if (axis < 0) return r_.Error(k.key_mark, k.field, NotAnAxis(p, k.key));
      std::string v;
      MF_RETURN_IF_ERROR(r_.GetString(k.value, k.key_mark, k.field, &v));
      if (!Contains(p.axes[axis].file_values, v)) {
        return r_.Error(k.value.Mark(), k.field,
                        absl::StrCat("'", v, "' is not a value of axis '", k.key,
                                     "' (values: ", ListOrNone(p.axes[axis].file_values), ")"));
      }
      want.emplace_back(axis, std::move(v));
    }
    std::vector<Cell> kept;
    for (Cell& cell : *cells) {
      bool match = true;
      for (const auto& [axis, v] : want) match = match && cell.values[axis] == v;
      if (!match) kept.push_back(std::move(cell));
    }
    *cells = std::move(kept);
  }
  return absl::OkStatus();
}

// With `file` false, an entry whose value for an axis that --axis overrides is
// not among the new values is dropped: `--axis python=3.9` must not bring back
// a 3.10 cell through `include`.
absl::Status MatrixParser::ParseInclude(const Entry& e, bool file, Pipeline* p,
                                        std::vector<Cell>* cells) const {
  if (!e.value.IsSequence()) {
    return r_.Error(MarkOf(e.value, e.key_mark), e.field,
                    absl::StrCat("expected a list of cells, got ", KindOf(e.value)));
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    const std::string field = Item(e.field, i);
    const YAML::Mark mark = MarkOf(e.value[i], e.value.Mark());
    std::vector<Entry> keys;
    MF_RETURN_IF_ERROR(r_.Entries(e.value[i], e.value.Mark(), field, &keys));
    if (keys.empty()) return r_.Error(mark, field, "empty entry");
    std::vector<std::pair<size_t, std::string>> axis_values;
    std::vector<Var> extras;
    for (const Entry& k : keys) {
      std::string v;
      MF_RETURN_IF_ERROR(r_.GetString(k.value, k.key_mark, k.field, &v));
      const int axis = AxisIndex(*p, k.key);
      if (axis >= 0) {
        MF_RETURN_IF_ERROR(CheckCellValue(r_, k.value.Mark(), k.field, v));
        axis_values.emplace_back(axis, std::move(v));
        continue;
      }
      if (!AllOf(k.key, IsNameChar)) {
        return r_.Error(
            k.key_mark, k.field,
            absl::StrCat("variable name '", k.key, "' may hold only letters, digits, '_' and '-'"));
      }
      if (file && !Contains(p->include_vars, k.key)) p->include_vars.push_back(k.key);
      extras.push_back({k.key, std::move(v)});
    }
    if (!file) {
      bool dropped = false;
      for (const auto& [axis, v] : axis_values) {
        const Axis& a = p->axes[axis];
        dropped = dropped || (a.overridden && !Contains(a.values, v));
      }
      if (dropped) continue;
    }
    // Earlier include entries' new cells count as existing, so two entries
    // naming the same new cell do not produce two cells with one task id.
    bool matched = false;
    for (Cell& cell : *cells) {
      bool match = true;
      for (const auto& [axis, v] : axis_values) match = match && cell.values[axis] == v;
      if (!match) continue;
      matched = true;
      for (const Var& x : extras) {
        bool set = false;
        for (Var& have : cell.extras) {
          if (have.name == x.name) {
            have.value = x.value;  // a later entry wins, as in GitHub Actions
            set = true;
          }
        }
        if (!set) cell.extras.push_back(x);
      }
    }
    if (matched) continue;
    std::vector<std::string> missing;
    Cell cell;
    cell.values.resize(p->axes.size());
    std::vector<bool> given(p->axes.size(), false);
    for (const auto& [axis, v] : axis_values) {
      cell.values[axis] = v;
      given[axis] = true;
    }
    for (size_t a = 0; a < p->axes.size(); ++a) {
      if (!given[a]) missing.push_back(p->axes[a].name);
    }
    if (!missing.empty()) {
      return r_.Error(
          mark, field,
          absl::StrCat("entry matches no matrix cell, so it would add a new cell, which needs a "
                       "value for every axis (missing: ",
                       absl::StrJoin(missing, ", "), ")"));
    }
    cell.extras = std::move(extras);
    cells->push_back(std::move(cell));
  }
  return absl::OkStatus();
}

absl::Status MatrixParser::NoMatrix(const ExpandOptions& options, Pipeline* p) const {
  MF_RETURN_IF_ERROR(ApplyAxisOptions(options, p));  // any --axis is an error
  p->file_cells.push_back(Cell{});                   // one cell without axes
  p->cells = p->file_cells;
  return absl::OkStatus();
}

}  // namespace musafarm::pipeline
