#include "pipeline/input_uses.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "pipeline/cell_values.h"
#include "pipeline/stages.h"

namespace musafarm::pipeline {
namespace {

const InputDecl* FindInput(const Pipeline& p, absl::string_view name) {
  for (const InputDecl& in : p.inputs) {
    if (in.name == name) return &in;
  }
  return nullptr;
}

// "${NAME}" references in `text`, in order.
std::vector<std::string> ParamRefs(const std::string& text) {
  std::vector<std::string> names;
  for (size_t at = text.find("${"); at != std::string::npos; at = text.find("${", at + 2)) {
    const size_t close = text.find('}', at);
    if (close == std::string::npos) break;  // SubstituteInputParams says so
    names.push_back(text.substr(at + 2, close - at - 2));
  }
  return names;
}

// The per-cell keys that make a use differ from the job-wide one, by axis
// index: "@AXIS=VALUE" each.
using Keys = std::map<int, std::string>;

std::string Suffix(const Pipeline& p, const Keys& keys) {
  std::string out;
  for (const auto& [axis, value] : keys) absl::StrAppend(&out, "@", p.axes[axis].name, "=", value);
  return out;
}

void Record(InputUse use, std::vector<InputUse>* uses) {
  for (const InputUse& have : *uses) {
    if (have.name == use.name) return;
  }
  uses->push_back(std::move(use));
}

// Uses of a path or git input: its name, the keys it differs by in *keys.
absl::StatusOr<std::string> UseLeaf(const YamlReader& r, const Pipeline& p, const Cell& cell,
                                    const InputDecl& in, absl::string_view where, bool replaced,
                                    Keys* keys, std::vector<InputUse>* uses) {
  InputUse use;
  use.name = in.name;
  use.declared = in.name;
  if (in.git.empty() || replaced) {
    Record(std::move(use), uses);
    return in.name;
  }
  std::vector<std::pair<std::string, std::string>> job_wide, in_cell;
  Keys mine;
  for (const std::string& text : {in.git, in.ref}) {
    for (const std::string& name : ParamRefs(text)) {
      const Param* param = FindParam(p, name);
      if (param == nullptr) continue;  // SubstituteInputParams names it
      MF_ASSIGN_OR_RETURN(const CellValue* source, CellParamSource(r, p, cell, *param, where));
      job_wide.emplace_back(name, param->value);
      in_cell.emplace_back(name, source == nullptr ? param->value : source->value);
      if (source != nullptr) mine[source->axis] = source->axis_value;
    }
  }
  MF_ASSIGN_OR_RETURN(use.git, SubstituteInputParams(in.git, in_cell, in.where, "git"));
  MF_ASSIGN_OR_RETURN(use.ref, SubstituteInputParams(in.ref, in_cell, in.where, "ref"));
  MF_ASSIGN_OR_RETURN(std::string git, SubstituteInputParams(in.git, job_wide, in.where, "git"));
  MF_ASSIGN_OR_RETURN(std::string ref, SubstituteInputParams(in.ref, job_wide, in.where, "ref"));
  // A per-cell value equal to the job-wide one builds the same tree.
  if (git != use.git || ref != use.ref) {
    use.name = absl::StrCat(in.name, Suffix(p, mine));
    keys->insert(mine.begin(), mine.end());
  }
  std::string name = use.name;
  Record(std::move(use), uses);
  return name;
}

}  // namespace

absl::StatusOr<std::string> SubstituteInputParams(
    const std::string& text, const std::vector<std::pair<std::string, std::string>>& params,
    absl::string_view where, absl::string_view field) {
  std::string out;
  size_t at = 0;
  while (true) {
    const size_t open = text.find("${", at);
    if (open == std::string::npos) break;
    const size_t close = text.find('}', open);
    if (close == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ".", field, ": '${' without '}' in '", text, "'"));
    }
    const std::string name = text.substr(open + 2, close - open - 2);
    auto it = std::find_if(params.begin(), params.end(),
                           [&](const auto& kv) { return kv.first == name; });
    if (it == params.end()) {
      return absl::InvalidArgumentError(absl::StrCat(where, ".", field, ": unknown param '",
                                                     name, "' (only params are substituted here)"));
    }
    absl::StrAppend(&out, text.substr(at, open - at), it->second);
    at = close + 1;
  }
  absl::StrAppend(&out, text.substr(at));
  return out;
}

absl::StatusOr<std::string> UseInput(const YamlReader& r, const Pipeline& p, const Cell& cell,
                                     const std::string& name, absl::string_view where,
                                     const std::vector<std::string>& replaced,
                                     std::vector<InputUse>* uses) {
  const InputDecl* in = FindInput(p, name);
  if (in == nullptr) return name;  // CheckInputReference has refused it
  const bool is_replaced = Contains(replaced, name);
  Keys keys;
  if (in->join.empty() || is_replaced) {
    return UseLeaf(r, p, cell, *in, where, is_replaced, &keys, uses);
  }
  InputUse join;
  join.declared = in->name;
  for (const auto& [sub, part_name] : in->join) {
    const InputDecl* part = FindInput(p, part_name);
    if (part == nullptr) return name;  // ParseInputs has refused it
    MF_ASSIGN_OR_RETURN(std::string use, UseLeaf(r, p, cell, *part, where,
                                                 Contains(replaced, part_name), &keys, uses));
    join.join.emplace_back(sub, std::move(use));
  }
  join.name = absl::StrCat(in->name, Suffix(p, keys));
  std::string out = join.name;
  Record(std::move(join), uses);
  return out;
}

absl::Status ValidateInputUseName(absl::string_view name) {
  if (name.size() > 256) {
    return absl::InvalidArgumentError(
        absl::StrCat("input name '", name.substr(0, 64), "...' is longer than 256 bytes"));
  }
  std::vector<absl::string_view> parts = absl::StrSplit(name, '@');
  MF_RETURN_IF_ERROR(ValidateInputName(parts[0]));
  for (size_t i = 1; i < parts.size(); ++i) {
    const size_t eq = parts[i].find('=');
    if (eq == absl::string_view::npos || !AllOf(parts[i].substr(0, eq), IsNameChar) ||
        !AllOf(parts[i].substr(eq + 1), IsCellValueChar)) {
      return absl::InvalidArgumentError(
          absl::StrCat("input name '", name, "': '@", parts[i],
                       "' is not @AXIS=VALUE (an axis name and one of its values)"));
    }
  }
  return absl::OkStatus();
}

absl::string_view DeclaredInputName(absl::string_view use) { return use.substr(0, use.find('@')); }

}  // namespace musafarm::pipeline
