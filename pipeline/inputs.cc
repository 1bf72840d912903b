#include "pipeline/inputs.h"

#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "pipeline/stages.h"

namespace musafarm::pipeline {
namespace {

// Whether `path` has a ".." component: an ignore file must stay in its input.
bool Climbs(absl::string_view path) {
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") return true;
  }
  return false;
}

std::vector<std::string> InputNames(const Pipeline& p) {
  std::vector<std::string> names;
  for (const InputDecl& in : p.inputs) names.push_back(in.name);
  return names;
}

absl::Status ParseInput(const YamlReader& r, const Entry& e, Pipeline* p) {
  InputDecl in;
  in.name = e.key;
  if (absl::Status valid = ValidateInputName(in.name); !valid.ok()) {
    return r.Error(e.key_mark, e.field, valid.message());
  }
  if (!e.value.IsMap()) {
    return r.Error(MarkOf(e.value, e.key_mark), e.field,
                   absl::StrCat("expected a mapping {path: DIR, ignore: FILE}, got ",
                                KindOf(e.value)));
  }
  std::vector<Entry> fields;
  MF_RETURN_IF_ERROR(r.Entries(e.value, e.key_mark, e.field, &fields));
  MF_RETURN_IF_ERROR(r.CheckAllowed(fields, e.field, {"path", "ignore"}));
  bool has_path = false;
  for (const Entry& f : fields) {
    if (f.key == "path") {
      MF_RETURN_IF_ERROR(r.GetString(f.value, f.key_mark, f.field, &in.path));
      if (in.path.empty()) return r.Error(MarkOf(f.value, f.key_mark), f.field, "must not be empty");
      if (absl::StartsWith(in.path, "/") || absl::StartsWith(in.path, "~")) {
        return r.Error(MarkOf(f.value, f.key_mark), f.field,
                       absl::StrCat("'", in.path,
                                    "' must be relative to the pipeline file's directory, so "
                                    "that the file means the same on every machine"));
      }
      has_path = true;
    } else if (f.key == "ignore") {
      MF_RETURN_IF_ERROR(r.GetString(f.value, f.key_mark, f.field, &in.ignore));
      in.ignore_given = true;
      if (absl::StartsWith(in.ignore, "/") || Climbs(in.ignore)) {
        return r.Error(MarkOf(f.value, f.key_mark), f.field,
                       absl::StrCat("'", in.ignore, "' escapes input '", in.name,
                                    "': the ignore file is a path inside the input"));
      }
    }
  }
  if (!has_path) {
    return r.Error(e.key_mark, e.field,
                   "missing 'path': the directory to send, relative to the pipeline file's "
                   "directory");
  }
  const YAML::Mark mark = e.key_mark;
  in.where = absl::StrCat(r.file(), ":", mark.line + 1, ":", mark.column + 1, ": ", e.field);
  p->inputs.push_back(std::move(in));
  return absl::OkStatus();
}

}  // namespace

absl::Status ParseInputs(const YamlReader& r, const Entry& e, Pipeline* p) {
  if (!e.value.IsMap()) {
    return r.Error(MarkOf(e.value, e.key_mark), e.field,
                   absl::StrCat("expected a mapping of input names, got ", KindOf(e.value)));
  }
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(r.Entries(e.value, e.key_mark, e.field, &entries));
  for (const Entry& entry : entries) MF_RETURN_IF_ERROR(ParseInput(r, entry, p));
  return absl::OkStatus();
}

absl::Status CheckInputReference(const YamlReader& r, const Pipeline& p, const Text& context,
                                 const std::string& name, absl::string_view where) {
  if (p.inputs.empty()) return absl::OkStatus();
  for (const InputDecl& in : p.inputs) {
    if (in.name == name) return absl::OkStatus();
  }
  return r.Error(context.mark, context.field,
                 absl::StrCat("unknown input '", name, "'", where, " (inputs are: ",
                              absl::StrJoin(InputNames(p), ", "), ")"));
}

}  // namespace musafarm::pipeline
