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

const char kKinds[] = "{path: DIR, ignore: FILE}, {git: URL, ref: REF} or {join: {.: INPUT, DIR: INPUT}}";

absl::Status ParseJoin(const YamlReader& r, const Entry& f, InputDecl* in) {
  if (!f.value.IsMap()) {
    return r.Error(MarkOf(f.value, f.key_mark), f.field,
                   absl::StrCat("expected a mapping {.: INPUT, DIR: INPUT}, got ", KindOf(f.value)));
  }
  std::vector<Entry> parts;
  MF_RETURN_IF_ERROR(r.Entries(f.value, f.key_mark, f.field, &parts));
  if (parts.empty()) return r.Error(MarkOf(f.value, f.key_mark), f.field, "must not be empty");
  for (const Entry& part : parts) {
    const bool component = !part.key.empty() && part.key != ".." &&
                           part.key.find('/') == std::string::npos;
    if (!component) {
      return r.Error(part.key_mark, part.field,
                     absl::StrCat("'", part.key, "' must be '.' (the input's top directory) or "
                                  "one directory name"));
    }
    std::string name;
    MF_RETURN_IF_ERROR(r.GetString(part.value, part.key_mark, part.field, &name));
    in->join.emplace_back(part.key, std::move(name));
  }
  return absl::OkStatus();
}

absl::Status ParseInput(const YamlReader& r, const Entry& e, Pipeline* p) {
  InputDecl in;
  in.name = e.key;
  if (absl::Status valid = ValidateInputName(in.name); !valid.ok()) {
    return r.Error(e.key_mark, e.field, valid.message());
  }
  if (!e.value.IsMap()) {
    return r.Error(MarkOf(e.value, e.key_mark), e.field,
                   absl::StrCat("expected a mapping ", kKinds, ", got ", KindOf(e.value)));
  }
  std::vector<Entry> fields;
  MF_RETURN_IF_ERROR(r.Entries(e.value, e.key_mark, e.field, &fields));
  MF_RETURN_IF_ERROR(r.CheckAllowed(fields, e.field, {"path", "ignore", "git", "ref", "join"}));
  std::vector<std::string> kinds;
  for (const Entry& f : fields) {
    if (f.key == "path") {
      kinds.push_back("path");
      MF_RETURN_IF_ERROR(r.GetString(f.value, f.key_mark, f.field, &in.path));
      if (in.path.empty()) return r.Error(MarkOf(f.value, f.key_mark), f.field, "must not be empty");
      if (absl::StartsWith(in.path, "~")) {
        return r.Error(MarkOf(f.value, f.key_mark), f.field,
                       absl::StrCat("'", in.path, "': '~' is not expanded; give a path relative "
                                    "to the pipeline file's directory"));
      }
    } else if (f.key == "ignore") {
      MF_RETURN_IF_ERROR(r.GetString(f.value, f.key_mark, f.field, &in.ignore));
      in.ignore_given = true;
      if (absl::StartsWith(in.ignore, "/") || Climbs(in.ignore)) {
        return r.Error(MarkOf(f.value, f.key_mark), f.field,
                       absl::StrCat("'", in.ignore, "' escapes input '", in.name,
                                    "': the ignore file is a path inside the input"));
      }
    } else if (f.key == "git") {
      kinds.push_back("git");
      MF_RETURN_IF_ERROR(r.GetString(f.value, f.key_mark, f.field, &in.git));
      if (in.git.empty()) return r.Error(MarkOf(f.value, f.key_mark), f.field, "must not be empty");
    } else if (f.key == "ref") {
      MF_RETURN_IF_ERROR(r.GetString(f.value, f.key_mark, f.field, &in.ref));
    } else if (f.key == "join") {
      kinds.push_back("join");
      MF_RETURN_IF_ERROR(ParseJoin(r, f, &in));
    }
  }
  if (kinds.size() != 1) {
    return r.Error(e.key_mark, e.field,
                   kinds.empty()
                       ? absl::StrCat("missing 'path', 'git' or 'join': an input is ", kKinds,
                                      "; path is relative to the pipeline file's directory")
                       : absl::StrCat("has ", absl::StrJoin(kinds, " and "),
                                      "; an input is one of ", kKinds));
  }
  if (in.ignore_given && in.path.empty()) {
    return r.Error(e.key_mark, e.field, "'ignore' is for a 'path' input");
  }
  if (!in.ref.empty() && in.git.empty()) {
    return r.Error(e.key_mark, e.field, "'ref' is for a 'git' input");
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
  // A join names inputs declared beside it that are not joins themselves.
  for (size_t i = 0; i < p->inputs.size(); ++i) {
    for (const auto& [sub, name] : p->inputs[i].join) {
      const InputDecl* part = nullptr;
      for (const InputDecl& other : p->inputs) part = other.name == name ? &other : part;
      if (part == nullptr || !part->join.empty()) {
        return r.Error(entries[i].key_mark, Child(Child(entries[i].field, "join"), sub),
                       absl::StrCat(part == nullptr ? "unknown input '" : "input '", name,
                                    part == nullptr ? "'" : "' is a join itself",
                                    " (a join is made of path and git inputs: ",
                                    absl::StrJoin(InputNames(*p), ", "), ")"));
      }
    }
  }
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
