#include "pipeline/model.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace musafarm::pipeline {

bool Contains(const std::vector<std::string>& list, absl::string_view value) {
  for (const std::string& v : list) {
    if (v == value) return true;
  }
  return false;
}

std::string ListOrNone(const std::vector<std::string>& names) {
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}
bool AllOf(absl::string_view s, bool (*ok)(char)) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!ok(c)) return false;
  }
  return true;
}

bool IsNameChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
}

bool IsCellValueChar(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == ':' ||
         c == '+' || c == '-';
}

bool IsAbsolute(absl::string_view path) { return absl::StartsWith(path, "/"); }

std::string CellDesc(const Cell& cell) {
  return absl::StrCat("(", absl::StrJoin(cell.values, ", "), ")");
}

int AxisIndex(const Pipeline& p, absl::string_view name) {
  for (size_t i = 0; i < p.axes.size(); ++i) {
    if (p.axes[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<std::string> AxisNames(const Pipeline& p) {
  std::vector<std::string> names;
  for (const Axis& a : p.axes) names.push_back(a.name);
  return names;
}

const Param* FindParam(const Pipeline& p, absl::string_view name) {
  for (const Param& param : p.params) {
    if (param.name == name) return &param;
  }
  return nullptr;
}

std::vector<std::string> ParamNames(const Pipeline& p) {
  std::vector<std::string> names;
  for (const Param& param : p.params) names.push_back(param.name);
  return names;
}

std::string WithAxisOptions(const Pipeline& p) {
  std::vector<std::string> names;
  for (const Axis& a : p.axes) {
    if (a.overridden) names.push_back(a.name);
  }
  return names.empty() ? "" : absl::StrCat(" (with --axis ", absl::StrJoin(names, ", "), ")");
}

std::string Declared(const std::vector<std::string>& names, absl::string_view what) {
  if (names.empty()) return absl::StrCat("(the pipeline declares no ", what, ")");
  return absl::StrCat("(declared: ", absl::StrJoin(names, ", "), ")");
}

}  // namespace musafarm::pipeline
