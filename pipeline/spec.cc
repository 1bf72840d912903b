#include "pipeline/spec.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "common/labels.h"
#include "common/status_macros.h"
#include "google/protobuf/repeated_field.h"
#include "yaml-cpp/yaml.h"

// yaml-cpp reports errors by throwing. Every exception it can raise is caught in
// ParseAndExpand and turned into a Status, so none crosses this file.

namespace musafarm::pipeline {
namespace {

// Guards against a small file that expands into millions of tasks (the
// coordinator keeps every task of a job in memory and in its store).
constexpr int64_t kMaxCells = 1024;
constexpr int64_t kMaxTasks = 10000;

// A string from the file that may hold ${var} references, kept with where it
// came from so that a substitution error can point at it.
struct Text {
  std::string value;
  YAML::Mark mark;
  std::string field;
};

struct Var {
  std::string name;
  std::string value;
  bool param = false;  // a pipeline param: `${matrix.NAME}` does not reach it
};

struct Axis {
  std::string name;
  std::vector<std::string> values;       // in effect: the file's, or ExpandOptions::axes'
  std::vector<std::string> file_values;  // as the file gives them
  bool overridden = false;               // by ExpandOptions::axes
};

// A declared param with its effective value (the default, or ExpandOptions::params').
struct Param {
  std::string name;
  std::string value;
};

struct Cell {
  std::vector<std::string> values;  // one per axis, in axis order
  std::vector<Var> extras;          // non-axis keys of matching include entries
};

// One `when` key: the stage runs only where axis `axis` has one of `values`,
// or, for a param (axis < 0), only when param `param`'s value is one of them.
struct Condition {
  int axis;
  std::string param;
  std::vector<std::string> values;
};

// One `needs` entry: a name, or {stage: NAME, optional: true}.
struct Need {
  Text stage;
  bool optional = false;  // dropped in cells where the stage does not run
};

struct EnvVar {
  std::string name;
  Text value;
};

// What a stage runs: exactly one of the stage keys `exec`/`shell` (both kExec),
// `docker_build`, `docker_run`, `docker_push`.
enum class Kind { kExec, kDockerBuild, kDockerRun, kDockerPush };

// The docker kinds as written; every Text is substituted per cell in Expand,
// and checks that depend on the final value (paths, sizes, emptiness) run
// there too. A Text left default stands for an absent optional field: "".
struct DockerBuild {
  Text context;
  Text dockerfile;
  std::vector<EnvVar> build_args;
  std::vector<Text> tags;
  bool push = false;
  Text target;
  Text network;
};

struct DockerRun {
  Text image;
  std::vector<Text> command;
  bool privileged = false;
  Text shm_size;
  std::vector<Text> devices;
  std::vector<Text> mounts;  // "SRC:DST[:ro|rw]", split into v1::Mount after substitution
  Text network;
  std::vector<Text> collect;
  Text user;
  Text workdir;
};

struct DockerPush {
  std::vector<Text> images;
};

struct Stage {
  std::string name;
  std::string field;  // "stages[3]"
  YAML::Mark mark;    // of the stage's mapping
  YAML::Mark when_mark;
  bool has_when = false;
  std::vector<Condition> when;
  std::vector<Need> needs;
  std::vector<Text> labels;
  std::vector<std::string> secrets;  // declared at the top level; never substituted
  bool has_gpus = false;
  Text gpus;  // a whole number >= 0 once substituted
  Kind kind = Kind::kExec;
  std::vector<Text> argv;  // kExec
  bool shell = false;      // kExec
  DockerBuild docker_build;
  DockerRun docker_run;
  DockerPush docker_push;
  std::vector<EnvVar> env;
  int64_t timeout_seconds = 0;
  int32_t retries = 0;
};

struct Pipeline {
  std::string name;
  YAML::Mark stages_mark;
  std::vector<Axis> axes;
  // The cells as the file gives them; `when` is checked against these, so a
  // file stays valid whatever `--axis` values it is submitted with.
  std::vector<Cell> file_cells;
  std::vector<Cell> cells;                 // in effect: after ExpandOptions::axes
  std::vector<std::string> include_vars;   // names of every include entry's extra keys
  std::vector<Param> params;               // in file order
  std::vector<std::string> secrets;        // declared, in file order
  std::vector<std::string> given_secrets;  // ExpandOptions::secrets, sorted, unique
  std::vector<EnvVar> env;
  std::vector<Stage> stages;
};

// A mapping entry with its key checked to be a string.
struct Entry {
  std::string key;
  YAML::Mark key_mark;
  YAML::Node value;
  std::string field;  // path of the value, e.g. "stages[0].env.PY"
};

std::string Child(absl::string_view parent, absl::string_view key) {
  return parent.empty() ? std::string(key) : absl::StrCat(parent, ".", key);
}

std::string Item(absl::string_view parent, size_t i) { return absl::StrCat(parent, "[", i, "]"); }

const char* KindOf(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Scalar:
      return "a string";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    default:
      return "nothing";
  }
}

// A null value's mark points at the token after it (often the next line), so
// errors about it point at its key instead.
YAML::Mark MarkOf(const YAML::Node& node, const YAML::Mark& fallback) {
  if (!node.IsDefined() || node.IsNull() || node.Mark().is_null()) return fallback;
  return node.Mark();
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

// Environment variable and build argument names.
bool IsEnvName(absl::string_view s) {
  if (s.empty() || absl::ascii_isdigit(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

bool IsAbsolute(absl::string_view path) { return absl::StartsWith(path, "/"); }

// `docker run -v` syntax: "SRC:DST" or "SRC:DST:ro|rw", both absolute. A
// relative SRC would make Docker create a named volume instead of a bind mount.
absl::Status ParseMount(absl::string_view spec, v1::Mount* out) {
  const std::vector<absl::string_view> parts = absl::StrSplit(spec, ':');
  if (parts.size() != 2 && parts.size() != 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("mount '", spec, "' is not SRC:DST or SRC:DST:ro|rw"));
  }
  if (!IsAbsolute(parts[0])) {
    return absl::InvalidArgumentError(
        absl::StrCat("mount '", spec, "': host path '", parts[0], "' is not an absolute path"));
  }
  if (!IsAbsolute(parts[1])) {
    return absl::InvalidArgumentError(absl::StrCat("mount '", spec, "': container path '", parts[1],
                                                   "' is not an absolute path"));
  }
  if (parts.size() == 3 && parts[2] != "ro" && parts[2] != "rw") {
    return absl::InvalidArgumentError(
        absl::StrCat("mount '", spec, "': mode must be 'ro' or 'rw', got '", parts[2], "'"));
  }
  out->set_source(std::string(parts[0]));
  out->set_target(std::string(parts[1]));
  out->set_read_only(parts.size() == 3 && parts[2] == "ro");
  return absl::OkStatus();
}

// `docker run --shm-size`: "<number><unit>", the number greater than 0, the
// unit optional and one of b, k, m, g in either case.
absl::Status ValidateShmSize(absl::string_view size) {
  absl::string_view digits = size;
  int64_t unit = 1;
  if (!digits.empty()) {
    switch (absl::ascii_tolower(static_cast<unsigned char>(digits.back()))) {
      case 'b':
        unit = 1;
        digits.remove_suffix(1);
        break;
      case 'k':
        unit = int64_t{1} << 10;
        digits.remove_suffix(1);
        break;
      case 'm':
        unit = int64_t{1} << 20;
        digits.remove_suffix(1);
        break;
      case 'g':
        unit = int64_t{1} << 30;
        digits.remove_suffix(1);
        break;
      default:
        break;
    }
  }
  int64_t n = 0;
  if (!AllOf(digits, [](char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); })) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", size,
                     "' is not a size (write digits with an optional unit b, k, m or g, "
                     "e.g. \"80g\")"));
  }
  if (!absl::SimpleAtoi(digits, &n) || n > INT64_MAX / unit) {
    return absl::InvalidArgumentError(absl::StrCat("size '", size, "' is too large"));
  }
  if (n == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("size must be greater than 0, got '", size, "'"));
  }
  return absl::OkStatus();
}

std::string ListOrNone(const std::vector<std::string>& names) {
  return names.empty() ? "none" : absl::StrJoin(names, ", ");
}

// "(dev, 3.8)"
std::string CellDesc(const Cell& cell) {
  return absl::StrCat("(", absl::StrJoin(cell.values, ", "), ")");
}

std::string BaseName(absl::string_view file) {
  const size_t slash = file.find_last_of('/');
  if (slash != absl::string_view::npos) file.remove_prefix(slash + 1);
  const size_t dot = file.rfind('.');
  if (dot != absl::string_view::npos && dot > 0) file = file.substr(0, dot);
  return std::string(file);
}

// Parses the YAML tree into a Pipeline, then expands it into a Job. Holds the
// source text so errors inside a multi-line script can name their own line.
class Compiler {
 public:
  Compiler(absl::string_view yaml, absl::string_view file) : yaml_(yaml), file_(file) {}

  absl::Status Error(const YAML::Mark& mark, absl::string_view field,
                     absl::string_view what) const {
    const int line = mark.line >= 0 ? mark.line + 1 : 1;
    const int col = mark.column >= 0 ? mark.column + 1 : 1;
    return absl::InvalidArgumentError(
        absl::StrCat(file_, ":", line, ":", col, ": ", field, ": ", what));
  }

  // An error about a submit option, which has no place in the file:
  // "FILE: --param NAME: what".
  absl::Status OptionError(absl::string_view flag, absl::string_view name,
                           absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(file_, ": ", flag, " ", name, ": ", what));
  }

  absl::Status Parse(const YAML::Node& root, const ExpandOptions& options, Pipeline* p) const;
  absl::StatusOr<v1::Job> Expand(const Pipeline& p, absl::string_view job_id,
                                 absl::string_view name) const;
  // The declared secrets, so that an unknown `${NAME}` naming one says why.
  void set_secrets(std::vector<std::string> names) { secrets_ = std::move(names); }

 private:
  absl::Status Entries(const YAML::Node& node, const YAML::Mark& fallback, absl::string_view field,
                       std::vector<Entry>* out) const;
  absl::Status CheckAllowed(const std::vector<Entry>& entries, absl::string_view field,
                            const std::vector<std::string>& allowed) const;
  absl::Status GetString(const YAML::Node& node, const YAML::Mark& fallback,
                         absl::string_view field, std::string* out) const;
  absl::Status GetText(const YAML::Node& node, const YAML::Mark& fallback, absl::string_view field,
                       Text* out) const;
  absl::Status GetTextList(const YAML::Node& node, const YAML::Mark& fallback,
                           absl::string_view field, const char* what, std::vector<Text>* out) const;
  absl::Status GetBool(const Entry& e, bool* out) const;
  absl::Status ParseEnv(const Entry& e, absl::string_view what, std::vector<EnvVar>* out) const;
  absl::Status ParseMatrix(const Entry& e, const ExpandOptions& options, Pipeline* p) const;
  absl::Status ApplyAxisOptions(const ExpandOptions& options, Pipeline* p) const;
  absl::Status BuildCells(const Entry& e, const Entry* exclude, const Entry* include, bool file,
                          Pipeline* p, std::vector<Cell>* cells) const;
  absl::Status ParseExclude(const Entry& e, const Pipeline& p, std::vector<Cell>* cells) const;
  absl::Status ParseInclude(const Entry& e, bool file, Pipeline* p, std::vector<Cell>* cells) const;
  absl::Status ParseParams(const Entry& e, Pipeline* p) const;
  absl::Status ParseSecrets(const Entry& e, Pipeline* p) const;
  absl::Status ApplyOptions(const ExpandOptions& options, Pipeline* p) const;
  absl::Status ParseNeeds(const Entry& e, Stage* s) const;
  absl::Status ParseStageSecrets(const Entry& e, const Pipeline& p, Stage* s) const;
  absl::Status ParseGpus(const Entry& e, Stage* s) const;
  absl::Status ParseStage(const YAML::Node& node, const YAML::Mark& fallback, size_t index,
                          const Pipeline& p, Stage* s) const;
  absl::Status ParseWhen(const Entry& e, const Pipeline& p, Stage* s) const;
  absl::Status ParseTimeout(const Entry& e, int64_t* out) const;
  absl::Status ParseDockerBuild(const Entry& e, DockerBuild* out) const;
  absl::Status ParseDockerRun(const Entry& e, DockerRun* out) const;
  absl::Status ParseDockerPush(const Entry& e, DockerPush* out) const;

  YAML::Mark Locate(const Text& t, size_t offset) const;
  absl::StatusOr<std::string> Substitute(const Text& t, const std::vector<Var>& vars,
                                         absl::string_view where) const;
  absl::Status Invalid(const Text& t, absl::string_view where, absl::string_view what) const;
  absl::Status SubstituteSpan(const Text& t, size_t begin, size_t end, const std::vector<Var>& vars,
                              absl::string_view where, std::string* out) const;
  absl::Status SubstituteAll(const std::vector<Text>& texts, const std::vector<Var>& vars,
                             absl::string_view where, bool non_empty,
                             google::protobuf::RepeatedPtrField<std::string>* out) const;
  absl::Status ExpandKind(const Stage& st, const std::vector<Var>& vars, absl::string_view where,
                          v1::StageSpec* run) const;

  const absl::string_view yaml_;
  const std::string file_;
  std::vector<std::string> secrets_;
};

absl::Status Compiler::Entries(const YAML::Node& node, const YAML::Mark& fallback,
                               absl::string_view field, std::vector<Entry>* out) const {
  if (!node.IsMap()) {
    return Error(MarkOf(node, fallback), field,
                 absl::StrCat("expected a mapping, got ", KindOf(node)));
  }
  // yaml-cpp keeps both entries of a repeated key and lookups see only the
  // first; a silently ignored second `env:` would be a nasty surprise.
  std::map<std::string, int> first_line;
  // The iterator's operator-> hands out a temporary, so take each pair by value.
  for (const auto& kv : node) {
    const YAML::Node key = kv.first;
    if (!key.IsScalar()) {
      return Error(MarkOf(key, fallback), field,
                   absl::StrCat("keys must be strings, got ", KindOf(key)));
    }
    Entry e{key.Scalar(), key.Mark(), kv.second, Child(field, key.Scalar())};
    auto [pos, inserted] = first_line.emplace(e.key, e.key_mark.line + 1);
    if (!inserted) {
      return Error(
          e.key_mark, e.field,
          absl::StrCat("duplicate key '", e.key, "' (first given on line ", pos->second, ")"));
    }
    out->push_back(std::move(e));
  }
  return absl::OkStatus();
}

absl::Status Compiler::CheckAllowed(const std::vector<Entry>& entries, absl::string_view field,
                                    const std::vector<std::string>& allowed) const {
  for (const Entry& e : entries) {
    bool known = false;
    for (const std::string& a : allowed) known = known || a == e.key;
    if (!known) {
      return Error(e.key_mark, Child(field, e.key),
                   absl::StrCat("unknown field '", e.key,
                                "' (allowed: ", absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status Compiler::GetString(const YAML::Node& node, const YAML::Mark& fallback,
                                 absl::string_view field, std::string* out) const {
  if (!node.IsScalar()) {
    return Error(MarkOf(node, fallback), field,
                 absl::StrCat("expected a string, got ", KindOf(node)));
  }
  *out = node.Scalar();
  return absl::OkStatus();
}

absl::Status Compiler::GetText(const YAML::Node& node, const YAML::Mark& fallback,
                               absl::string_view field, Text* out) const {
  MF_RETURN_IF_ERROR(GetString(node, fallback, field, &out->value));
  out->mark = node.Mark();
  out->field = std::string(field);
  return absl::OkStatus();
}

absl::Status Compiler::GetTextList(const YAML::Node& node, const YAML::Mark& fallback,
                                   absl::string_view field, const char* what,
                                   std::vector<Text>* out) const {
  if (!node.IsSequence()) {
    return Error(MarkOf(node, fallback), field,
                 absl::StrCat("expected ", what, ", got ", KindOf(node)));
  }
  const YAML::Mark list_mark = MarkOf(node, fallback);
  for (size_t i = 0; i < node.size(); ++i) {
    Text t;
    MF_RETURN_IF_ERROR(GetText(node[i], list_mark, Item(field, i), &t));
    out->push_back(std::move(t));
  }
  return absl::OkStatus();
}

// `what` names the keys in errors: "environment variable", "build argument".
// YAML's true/false (the core schema's spellings). yaml-cpp would also take
// yes/no/on/off, which YAML 1.2 reads as strings; refuse them rather than guess.
absl::Status Compiler::GetBool(const Entry& e, bool* out) const {
  const YAML::Mark mark = MarkOf(e.value, e.key_mark);
  if (!e.value.IsScalar()) {
    return Error(mark, e.field, absl::StrCat("expected true or false, got ", KindOf(e.value)));
  }
  const std::string& text = e.value.Scalar();
  if (text == "true" || text == "True" || text == "TRUE") {
    *out = true;
  } else if (text == "false" || text == "False" || text == "FALSE") {
    *out = false;
  } else {
    return Error(mark, e.field, absl::StrCat("expected true or false, got '", text, "'"));
  }
  return absl::OkStatus();
}

absl::Status Compiler::ParseEnv(const Entry& e, absl::string_view what,
                                std::vector<EnvVar>* out) const {
  std::vector<Entry> vars;
  MF_RETURN_IF_ERROR(Entries(e.value, e.key_mark, e.field, &vars));
  for (const Entry& v : vars) {
    if (!IsEnvName(v.key)) {
      return Error(v.key_mark, v.field,
                   absl::StrCat("'", v.key, "' is not a valid ", what, " name ",
                                "(letters, digits and '_', not starting with a digit)"));
    }
    EnvVar var{v.key, {}};
    MF_RETURN_IF_ERROR(GetText(v.value, v.key_mark, v.field, &var.value));
    out->push_back(std::move(var));
  }
  return absl::OkStatus();
}

absl::Status CheckCellValue(const Compiler& c, const YAML::Mark& mark, absl::string_view field,
                            absl::string_view value) {
  if (AllOf(value, IsCellValueChar)) return absl::OkStatus();
  return c.Error(
      mark, field,
      absl::StrCat("matrix value '", value,
                   "' may hold only letters, digits and . _ : + - (it becomes part of task ids)"));
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

std::string NotAnAxis(const Pipeline& p, absl::string_view key) {
  if (p.axes.empty()) {
    return absl::StrCat("'", key, "' is not a matrix axis (the pipeline has no matrix axes)");
  }
  return absl::StrCat("'", key, "' is not a matrix axis (axes: ", ListOrNone(AxisNames(p)), ")");
}

bool Contains(const std::vector<std::string>& list, absl::string_view value) {
  for (const std::string& v : list) {
    if (v == value) return true;
  }
  return false;
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

bool AnyOverridden(const Pipeline& p) {
  for (const Axis& a : p.axes) {
    if (a.overridden) return true;
  }
  return false;
}

// " (with --axis python)" for messages about cells that ExpandOptions::axes
// changed; "" when it changed none.
std::string WithAxisOptions(const Pipeline& p) {
  std::vector<std::string> names;
  for (const Axis& a : p.axes) {
    if (a.overridden) names.push_back(a.name);
  }
  return names.empty() ? "" : absl::StrCat(" (with --axis ", absl::StrJoin(names, ", "), ")");
}

absl::Status Compiler::ParseMatrix(const Entry& e, const ExpandOptions& options,
                                   Pipeline* p) const {
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(Entries(e.value, e.key_mark, e.field, &entries));
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
      return Error(
          a.key_mark, a.field,
          absl::StrCat("axis name '", a.key, "' may hold only letters, digits, '_' and '-'"));
    }
    if (!a.value.IsSequence()) {
      return Error(MarkOf(a.value, a.key_mark), a.field,
                   absl::StrCat("expected a list of values, got ", KindOf(a.value)));
    }
    if (a.value.size() == 0) {
      return Error(MarkOf(a.value, a.key_mark), a.field,
                   absl::StrCat("axis '", a.key, "' has no values, so the matrix has no cells"));
    }
    Axis axis{a.key, {}, {}, false};
    for (size_t i = 0; i < a.value.size(); ++i) {
      std::string v;
      const std::string field = Item(a.field, i);
      MF_RETURN_IF_ERROR(GetString(a.value[i], a.value.Mark(), field, &v));
      MF_RETURN_IF_ERROR(CheckCellValue(*this, a.value[i].Mark(), field, v));
      for (const std::string& seen : axis.values) {
        if (seen == v) {
          return Error(a.value[i].Mark(), field, absl::StrCat("duplicate value '", v, "'"));
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

absl::Status Compiler::ApplyAxisOptions(const ExpandOptions& options, Pipeline* p) const {
  for (const auto& [name, values] : options.axes) {
    const int index = AxisIndex(*p, name);
    if (index < 0) return OptionError("--axis", name, NotAnAxis(*p, name));
    Axis& axis = p->axes[index];
    if (axis.overridden) {
      return OptionError("--axis", name, "given more than once (list all its values in one)");
    }
    if (values.empty()) {
      return OptionError(
          "--axis", name,
          absl::StrCat("no values given (the file's values: ", ListOrNone(axis.file_values), ")"));
    }
    for (size_t i = 0; i < values.size(); ++i) {
      const std::string& v = values[i];
      if (v.empty()) return OptionError("--axis", name, "empty value");
      if (!AllOf(v, IsCellValueChar)) {
        return OptionError("--axis", name,
                           absl::StrCat("value '", v,
                                        "' may hold only letters, digits and . _ : + - (it "
                                        "becomes part of task ids)"));
      }
      for (size_t j = 0; j < i; ++j) {
        if (values[j] == v) {
          return OptionError("--axis", name, absl::StrCat("duplicate value '", v, "'"));
        }
      }
    }
    axis.values = values;
    axis.overridden = true;
  }
  return absl::OkStatus();
}

// The cells of the matrix `e`: the file's (`file`) or those in effect.
absl::Status Compiler::BuildCells(const Entry& e, const Entry* exclude, const Entry* include,
                                  bool file, Pipeline* p, std::vector<Cell>* cells) const {
  const std::string with = file ? "" : WithAxisOptions(*p);
  auto values = [file](const Axis& a) -> const std::vector<std::string>& {
    return file ? a.file_values : a.values;
  };
  int64_t count = 1;
  for (const Axis& a : p->axes) {
    count *= static_cast<int64_t>(values(a).size());
    if (count > kMaxCells) {
      return Error(e.key_mark, e.field,
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
    return Error(e.key_mark, e.field,
                 absl::StrCat("matrix has no cells: every cell is excluded", with));
  }
  if (static_cast<int64_t>(cells->size()) > kMaxCells) {
    return Error(e.key_mark, e.field,
                 absl::StrCat("matrix has more than ", kMaxCells, " cells", with));
  }
  // Task ids join values with '-', which values may also hold: (a-b, c) and (a, b-c) collide.
  std::map<std::string, size_t> ids;
  for (size_t i = 0; i < cells->size(); ++i) {
    auto [it, inserted] = ids.emplace(absl::StrJoin((*cells)[i].values, "-"), i);
    if (!inserted) {
      return Error(
          e.key_mark, e.field,
          absl::StrCat("cells ", CellDesc((*cells)[it->second]), " and ", CellDesc((*cells)[i]),
                       " have the same task id part '", it->first, "'", with));
    }
  }
  return absl::OkStatus();
}

// Entries are checked against the file's axis values. An entry naming a value
// that --axis took away matches no product cell, so it removes nothing.
absl::Status Compiler::ParseExclude(const Entry& e, const Pipeline& p,
                                    std::vector<Cell>* cells) const {
  if (!e.value.IsSequence()) {
    return Error(MarkOf(e.value, e.key_mark), e.field,
                 absl::StrCat("expected a list of partial cells, got ", KindOf(e.value)));
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    const std::string field = Item(e.field, i);
    std::vector<Entry> keys;
    MF_RETURN_IF_ERROR(Entries(e.value[i], e.value.Mark(), field, &keys));
    if (keys.empty()) {
      // An empty entry matches every cell; that is never what was meant.
      return Error(e.value[i].Mark(), field, "empty entry: give at least one axis value");
    }
    std::vector<std::pair<size_t, std::string>> want;
    for (const Entry& k : keys) {
      const int axis = AxisIndex(p, k.key);
      if (axis < 0) return Error(k.key_mark, k.field, NotAnAxis(p, k.key));
      std::string v;
      MF_RETURN_IF_ERROR(GetString(k.value, k.key_mark, k.field, &v));
      if (!Contains(p.axes[axis].file_values, v)) {
        return Error(k.value.Mark(), k.field,
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
absl::Status Compiler::ParseInclude(const Entry& e, bool file, Pipeline* p,
                                    std::vector<Cell>* cells) const {
  if (!e.value.IsSequence()) {
    return Error(MarkOf(e.value, e.key_mark), e.field,
                 absl::StrCat("expected a list of cells, got ", KindOf(e.value)));
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    const std::string field = Item(e.field, i);
    const YAML::Mark mark = MarkOf(e.value[i], e.value.Mark());
    std::vector<Entry> keys;
    MF_RETURN_IF_ERROR(Entries(e.value[i], e.value.Mark(), field, &keys));
    if (keys.empty()) return Error(mark, field, "empty entry");
    std::vector<std::pair<size_t, std::string>> axis_values;
    std::vector<Var> extras;
    for (const Entry& k : keys) {
      std::string v;
      MF_RETURN_IF_ERROR(GetString(k.value, k.key_mark, k.field, &v));
      const int axis = AxisIndex(*p, k.key);
      if (axis >= 0) {
        MF_RETURN_IF_ERROR(CheckCellValue(*this, k.value.Mark(), k.field, v));
        axis_values.emplace_back(axis, std::move(v));
        continue;
      }
      if (!AllOf(k.key, IsNameChar)) {
        return Error(
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
      return Error(
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

// Keys are axes or params. Axis values are checked against the file's cells
// (not those after --axis); param values are free-form.
absl::Status Compiler::ParseWhen(const Entry& e, const Pipeline& p, Stage* s) const {
  std::vector<Entry> keys;
  MF_RETURN_IF_ERROR(Entries(e.value, e.key_mark, e.field, &keys));
  s->has_when = true;
  s->when_mark = MarkOf(e.value, e.key_mark);
  for (const Entry& k : keys) {
    const int axis = AxisIndex(p, k.key);
    const bool is_param = axis < 0 && FindParam(p, k.key) != nullptr;
    if (axis < 0 && !is_param) {
      const std::vector<std::string> params = ParamNames(p);
      return Error(k.key_mark, k.field,
                   absl::StrCat(NotAnAxis(p, k.key), " or a param (",
                                params.empty() ? "the pipeline declares no params"
                                               : absl::StrCat("params: ", ListOrNone(params)),
                                ")"));
    }
    Condition cond{axis, is_param ? k.key : "", {}};
    std::vector<std::pair<std::string, YAML::Mark>> values;
    if (k.value.IsSequence()) {
      if (k.value.size() == 0) return Error(k.value.Mark(), k.field, "empty list of values");
      for (size_t i = 0; i < k.value.size(); ++i) {
        std::string v;
        MF_RETURN_IF_ERROR(GetString(k.value[i], k.value.Mark(), Item(k.field, i), &v));
        values.emplace_back(std::move(v), k.value[i].Mark());
      }
    } else if (k.value.IsScalar()) {
      values.emplace_back(k.value.Scalar(), k.value.Mark());
    } else {
      return Error(MarkOf(k.value, k.key_mark), k.field,
                   absl::StrCat("expected a value or a list of values, got ", KindOf(k.value)));
    }
    if (is_param) {
      for (auto& [v, mark] : values) cond.values.push_back(std::move(v));
      s->when.push_back(std::move(cond));
      continue;
    }
    // A misspelt value would silently make the stage skip cells, so every
    // value must occur on its axis (or in a cell added by `include`).
    std::vector<std::string> known = p.axes[axis].file_values;
    for (const Cell& c : p.file_cells) {
      if (!Contains(known, c.values[axis])) known.push_back(c.values[axis]);
    }
    for (size_t i = 0; i < values.size(); ++i) {
      if (!Contains(known, values[i].first)) {
        return Error(values[i].second, k.value.IsSequence() ? Item(k.field, i) : k.field,
                     absl::StrCat("'", values[i].first, "' is not a value of axis '", k.key,
                                  "' (values: ", ListOrNone(known), ")"));
      }
      cond.values.push_back(values[i].first);
    }
    s->when.push_back(std::move(cond));
  }
  return absl::OkStatus();
}

absl::Status Compiler::ParseTimeout(const Entry& e, int64_t* out) const {
  std::string text;
  MF_RETURN_IF_ERROR(GetString(e.value, e.key_mark, e.field, &text));
  const YAML::Mark mark = e.value.Mark();
  int64_t seconds = 0;
  absl::Duration d;
  if (absl::SimpleAtoi(text, &seconds)) {
    d = absl::Seconds(seconds);
  } else if (!absl::ParseDuration(text, &d) || d == absl::InfiniteDuration() ||
             d == -absl::InfiniteDuration()) {
    return Error(
        mark, e.field,
        absl::StrCat("'", text, "' is not a duration (write e.g. \"90s\", \"30m\", \"1h30m\" ",
                     "or a whole number of seconds)"));
  }
  if (d <= absl::ZeroDuration()) {
    return Error(mark, e.field, absl::StrCat("must be positive, got '", text, "'"));
  }
  if (d % absl::Seconds(1) != absl::ZeroDuration()) {
    return Error(mark, e.field,
                 absl::StrCat("must be a whole number of seconds, got '", text, "'"));
  }
  *out = absl::ToInt64Seconds(d);
  return absl::OkStatus();
}

absl::Status Compiler::ParseDockerBuild(const Entry& e, DockerBuild* out) const {
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(Entries(e.value, e.key_mark, e.field, &entries));
  MF_RETURN_IF_ERROR(
      CheckAllowed(entries, e.field,
                   {"context", "dockerfile", "build_args", "tags", "push", "target", "network"}));
  bool has_context = false;
  bool has_tags = false;
  for (const Entry& f : entries) {
    if (f.key == "context") {
      MF_RETURN_IF_ERROR(GetText(f.value, f.key_mark, f.field, &out->context));
      has_context = true;
    } else if (f.key == "dockerfile") {
      MF_RETURN_IF_ERROR(GetText(f.value, f.key_mark, f.field, &out->dockerfile));
    } else if (f.key == "build_args") {
      MF_RETURN_IF_ERROR(ParseEnv(f, "build argument", &out->build_args));
    } else if (f.key == "tags") {
      MF_RETURN_IF_ERROR(GetTextList(f.value, f.key_mark, f.field, "a list of tags", &out->tags));
      if (out->tags.empty()) {
        return Error(MarkOf(f.value, f.key_mark), f.field, "must list at least one tag");
      }
      has_tags = true;
    } else if (f.key == "push") {
      MF_RETURN_IF_ERROR(GetBool(f, &out->push));
    } else if (f.key == "target") {
      MF_RETURN_IF_ERROR(GetText(f.value, f.key_mark, f.field, &out->target));
    } else if (f.key == "network") {
      MF_RETURN_IF_ERROR(GetText(f.value, f.key_mark, f.field, &out->network));
    }
  }
  if (!has_context) return Error(e.key_mark, e.field, "missing required field 'context'");
  if (!has_tags) return Error(e.key_mark, e.field, "missing required field 'tags'");
  return absl::OkStatus();
}

absl::Status Compiler::ParseDockerRun(const Entry& e, DockerRun* out) const {
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(Entries(e.value, e.key_mark, e.field, &entries));
  MF_RETURN_IF_ERROR(CheckAllowed(entries, e.field,
                                  {"image", "command", "privileged", "shm_size", "devices",
                                   "mounts", "network", "collect", "user", "workdir"}));
  bool has_image = false;
  for (const Entry& f : entries) {
    if (f.key == "image") {
      MF_RETURN_IF_ERROR(GetText(f.value, f.key_mark, f.field, &out->image));
      has_image = true;
    } else if (f.key == "command") {
      MF_RETURN_IF_ERROR(GetTextList(f.value, f.key_mark, f.field, "an argv list", &out->command));
      if (out->command.empty()) {
        return Error(MarkOf(f.value, f.key_mark), f.field,
                     "argv list is empty (leave 'command' out to run the image's CMD)");
      }
    } else if (f.key == "privileged") {
      MF_RETURN_IF_ERROR(GetBool(f, &out->privileged));
    } else if (f.key == "shm_size") {
      MF_RETURN_IF_ERROR(GetText(f.value, f.key_mark, f.field, &out->shm_size));
    } else if (f.key == "devices") {
      MF_RETURN_IF_ERROR(
          GetTextList(f.value, f.key_mark, f.field, "a list of devices", &out->devices));
    } else if (f.key == "mounts") {
      MF_RETURN_IF_ERROR(GetTextList(f.value, f.key_mark, f.field,
                                     "a list of SRC:DST[:ro|rw] mounts", &out->mounts));
    } else if (f.key == "network") {
      MF_RETURN_IF_ERROR(GetText(f.value, f.key_mark, f.field, &out->network));
    } else if (f.key == "collect") {
      MF_RETURN_IF_ERROR(
          GetTextList(f.value, f.key_mark, f.field, "a list of container paths", &out->collect));
    } else if (f.key == "user") {
      MF_RETURN_IF_ERROR(GetText(f.value, f.key_mark, f.field, &out->user));
    } else if (f.key == "workdir") {
      MF_RETURN_IF_ERROR(GetText(f.value, f.key_mark, f.field, &out->workdir));
    }
  }
  if (!has_image) return Error(e.key_mark, e.field, "missing required field 'image'");
  return absl::OkStatus();
}

absl::Status Compiler::ParseDockerPush(const Entry& e, DockerPush* out) const {
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(Entries(e.value, e.key_mark, e.field, &entries));
  MF_RETURN_IF_ERROR(CheckAllowed(entries, e.field, {"images"}));
  bool has_images = false;
  for (const Entry& f : entries) {
    if (f.key == "images") {
      MF_RETURN_IF_ERROR(
          GetTextList(f.value, f.key_mark, f.field, "a list of images", &out->images));
      if (out->images.empty()) {
        return Error(MarkOf(f.value, f.key_mark), f.field, "must list at least one image");
      }
      has_images = true;
    }
  }
  if (!has_images) return Error(e.key_mark, e.field, "missing required field 'images'");
  return absl::OkStatus();
}

bool IsDigit(char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)); }

// A GPU count as written or substituted: decimal digits only (no sign, no
// spaces), within int32.
bool ParseGpuCount(absl::string_view text, int32_t* out) {
  return AllOf(text, IsDigit) && absl::SimpleAtoi(text, out);
}

std::string GpuCountError(absl::string_view text) {
  if (absl::StartsWith(text, "-") && AllOf(text.substr(1), IsDigit)) {
    return absl::StrCat("must be 0 or more, got '", text, "'");
  }
  if (AllOf(text, IsDigit)) return absl::StrCat("'", text, "' is too large");
  return absl::StrCat("expected a whole number of GPUs (0 or more), got '", text, "'");
}

// "(declared: A, B)" or "(the pipeline declares no secrets)".
std::string Declared(const std::vector<std::string>& names, absl::string_view what) {
  if (names.empty()) return absl::StrCat("(the pipeline declares no ", what, ")");
  return absl::StrCat("(declared: ", absl::StrJoin(names, ", "), ")");
}

absl::Status Compiler::ParseNeeds(const Entry& e, Stage* s) const {
  if (!e.value.IsSequence()) {
    return Error(MarkOf(e.value, e.key_mark), e.field,
                 absl::StrCat("expected a list of stage names, got ", KindOf(e.value)));
  }
  const YAML::Mark list_mark = MarkOf(e.value, e.key_mark);
  for (size_t i = 0; i < e.value.size(); ++i) {
    const YAML::Node node = e.value[i];
    const std::string field = Item(e.field, i);
    Need need;
    if (node.IsScalar()) {
      MF_RETURN_IF_ERROR(GetText(node, list_mark, field, &need.stage));
    } else if (node.IsMap()) {
      std::vector<Entry> keys;
      MF_RETURN_IF_ERROR(Entries(node, list_mark, field, &keys));
      MF_RETURN_IF_ERROR(CheckAllowed(keys, field, {"stage", "optional"}));
      bool has_stage = false;
      for (const Entry& k : keys) {
        if (k.key == "stage") {
          MF_RETURN_IF_ERROR(GetText(k.value, k.key_mark, k.field, &need.stage));
          has_stage = true;
        } else if (k.key == "optional") {
          MF_RETURN_IF_ERROR(GetBool(k, &need.optional));
        }
      }
      if (!has_stage) {
        return Error(MarkOf(node, list_mark), field, "missing required field 'stage'");
      }
    } else {
      return Error(MarkOf(node, list_mark), field,
                   absl::StrCat("expected a stage name or a mapping {stage: NAME, optional: true}, "
                                "got ",
                                KindOf(node)));
    }
    s->needs.push_back(std::move(need));
  }
  return absl::OkStatus();
}

absl::Status Compiler::ParseStageSecrets(const Entry& e, const Pipeline& p, Stage* s) const {
  if (!e.value.IsSequence()) {
    return Error(MarkOf(e.value, e.key_mark), e.field,
                 absl::StrCat("expected a list of secret names, got ", KindOf(e.value)));
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    const std::string field = Item(e.field, i);
    std::string name;
    MF_RETURN_IF_ERROR(GetString(e.value[i], e.value.Mark(), field, &name));
    if (!Contains(p.secrets, name)) {
      return Error(e.value[i].Mark(), field,
                   absl::StrCat("secret '", name, "' is not declared in the top-level 'secrets' ",
                                Declared(p.secrets, "secrets")));
    }
    if (Contains(s->secrets, name)) {
      return Error(e.value[i].Mark(), field, absl::StrCat("duplicate secret '", name, "'"));
    }
    s->secrets.push_back(std::move(name));
  }
  return absl::OkStatus();
}

// A whole number, or a string with ${...} checked per cell once substituted.
absl::Status Compiler::ParseGpus(const Entry& e, Stage* s) const {
  MF_RETURN_IF_ERROR(GetText(e.value, e.key_mark, e.field, &s->gpus));
  s->has_gpus = true;
  const std::string& text = s->gpus.value;
  int32_t n = 0;
  if (text.find("${") != std::string::npos || ParseGpuCount(text, &n)) return absl::OkStatus();
  if (AllOf(text, IsDigit) || absl::StartsWith(text, "-")) {
    return Error(s->gpus.mark, e.field, GpuCountError(text));
  }
  return Error(s->gpus.mark, e.field,
               absl::StrCat("expected a whole number of GPUs (0 or more) or a string with "
                            "'${...}' that gives one, got '",
                            text, "'"));
}

absl::Status Compiler::ParseParams(const Entry& e, Pipeline* p) const {
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(Entries(e.value, e.key_mark, e.field, &entries));
  for (const Entry& k : entries) {
    if (!IsEnvName(k.key)) {
      return Error(k.key_mark, k.field,
                   absl::StrCat("'", k.key, "' is not a valid param name ",
                                "(letters, digits and '_', not starting with a digit)"));
    }
    // One name space for ${...}: a param may not shadow a cell's variable.
    if (AxisIndex(*p, k.key) >= 0) {
      return Error(k.key_mark, k.field,
                   absl::StrCat("param '", k.key, "' has the name of a matrix axis, so '${", k.key,
                                "}' would be ambiguous; rename one of them"));
    }
    if (Contains(p->include_vars, k.key)) {
      return Error(k.key_mark, k.field,
                   absl::StrCat("param '", k.key,
                                "' has the name of a variable that matrix.include introduces, so "
                                "'${",
                                k.key, "}' would be ambiguous; rename one of them"));
    }
    if (!k.value.IsScalar()) {
      return Error(MarkOf(k.value, k.key_mark), k.field,
                   absl::StrCat("expected a default value (a string), got ", KindOf(k.value),
                                k.value.IsNull() ? " (write \"\" for an empty default)" : ""));
    }
    p->params.push_back({k.key, k.value.Scalar()});
  }
  return absl::OkStatus();
}

absl::Status Compiler::ParseSecrets(const Entry& e, Pipeline* p) const {
  if (!e.value.IsSequence()) {
    return Error(MarkOf(e.value, e.key_mark), e.field,
                 absl::StrCat("expected a list of secret names, got ", KindOf(e.value)));
  }
  for (size_t i = 0; i < e.value.size(); ++i) {
    const std::string field = Item(e.field, i);
    std::string name;
    MF_RETURN_IF_ERROR(GetString(e.value[i], e.value.Mark(), field, &name));
    if (!IsEnvName(name)) {
      return Error(e.value[i].Mark(), field,
                   absl::StrCat("'", name, "' is not a valid secret name ",
                                "(letters, digits and '_', not starting with a digit)"));
    }
    if (Contains(p->secrets, name)) {
      return Error(e.value[i].Mark(), field, absl::StrCat("duplicate secret '", name, "'"));
    }
    for (const std::string& other : p->secrets) {
      // Docker stages get a secret as /run/secrets/<name lowercased> and
      // BuildKit id <name lowercased>: two names may not differ by case alone.
      if (absl::AsciiStrToLower(other) == absl::AsciiStrToLower(name)) {
        return Error(e.value[i].Mark(), field,
                     absl::StrCat("secret '", name, "' differs from '", other,
                                  "' only by case; Docker stages see both as /run/secrets/",
                                  absl::AsciiStrToLower(name)));
      }
    }
    p->secrets.push_back(std::move(name));
  }
  return absl::OkStatus();
}

// ExpandOptions::params and ::secrets, once the file's are known.
absl::Status Compiler::ApplyOptions(const ExpandOptions& options, Pipeline* p) const {
  for (const auto& [name, value] : options.params) {
    Param* param = nullptr;
    for (Param& have : p->params) {
      if (have.name == name) param = &have;
    }
    if (param == nullptr) {
      return OptionError("--param", name,
                         absl::StrCat("not declared in the pipeline's 'params' ",
                                      Declared(ParamNames(*p), "params")));
    }
    param->value = value;
  }
  for (const std::string& name : options.secrets) {
    if (!Contains(p->secrets, name)) {
      return OptionError("--secret", name,
                         absl::StrCat("not declared in the pipeline's 'secrets' ",
                                      Declared(p->secrets, "secrets")));
    }
    if (!Contains(p->given_secrets, name)) p->given_secrets.push_back(name);
  }
  std::sort(p->given_secrets.begin(), p->given_secrets.end());
  return absl::OkStatus();
}

absl::Status Compiler::ParseStage(const YAML::Node& node, const YAML::Mark& fallback, size_t index,
                                  const Pipeline& p, Stage* s) const {
  s->field = Item("stages", index);
  s->mark = MarkOf(node, fallback);
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(Entries(node, fallback, s->field, &entries));
  MF_RETURN_IF_ERROR(
      CheckAllowed(entries, s->field,
                   {"name", "when", "needs", "labels", "exec", "shell", "docker_build",
                    "docker_run", "docker_push", "env", "timeout", "retries", "secrets", "gpus"}));
  bool has_name = false;
  std::vector<const Entry*> kinds;  // in file order
  for (const Entry& e : entries) {
    if (e.key == "name") {
      MF_RETURN_IF_ERROR(GetString(e.value, e.key_mark, e.field, &s->name));
      if (!AllOf(s->name, IsNameChar)) {
        return Error(
            MarkOf(e.value, e.key_mark), e.field,
            absl::StrCat("stage name '", s->name,
                         "' must be non-empty and hold only letters, digits, '_' and '-'"));
      }
      has_name = true;
    } else if (e.key == "when") {
      MF_RETURN_IF_ERROR(ParseWhen(e, p, s));
    } else if (e.key == "needs") {
      MF_RETURN_IF_ERROR(ParseNeeds(e, s));
    } else if (e.key == "secrets") {
      MF_RETURN_IF_ERROR(ParseStageSecrets(e, p, s));
    } else if (e.key == "gpus") {
      MF_RETURN_IF_ERROR(ParseGpus(e, s));
    } else if (e.key == "labels") {
      MF_RETURN_IF_ERROR(GetTextList(e.value, e.key_mark, e.field, "a list of labels", &s->labels));
    } else if (e.key == "exec") {
      kinds.push_back(&e);
      s->kind = Kind::kExec;
      MF_RETURN_IF_ERROR(GetTextList(e.value, e.key_mark, e.field,
                                     "an argv list (use 'shell' for a script)", &s->argv));
      if (s->argv.empty()) return Error(e.value.Mark(), e.field, "argv list is empty");
      if (s->argv[0].value.empty())
        return Error(s->argv[0].mark, s->argv[0].field, "program is empty");
    } else if (e.key == "shell") {
      kinds.push_back(&e);
      s->kind = Kind::kExec;
      Text script;
      MF_RETURN_IF_ERROR(GetText(e.value, e.key_mark, e.field, &script));
      if (absl::StripAsciiWhitespace(script.value).empty()) {
        return Error(script.mark, e.field, "script is empty");
      }
      s->argv.push_back(std::move(script));
      s->shell = true;
    } else if (e.key == "docker_build") {
      kinds.push_back(&e);
      s->kind = Kind::kDockerBuild;
      MF_RETURN_IF_ERROR(ParseDockerBuild(e, &s->docker_build));
    } else if (e.key == "docker_run") {
      kinds.push_back(&e);
      s->kind = Kind::kDockerRun;
      MF_RETURN_IF_ERROR(ParseDockerRun(e, &s->docker_run));
    } else if (e.key == "docker_push") {
      kinds.push_back(&e);
      s->kind = Kind::kDockerPush;
      MF_RETURN_IF_ERROR(ParseDockerPush(e, &s->docker_push));
    } else if (e.key == "env") {
      MF_RETURN_IF_ERROR(ParseEnv(e, "environment variable", &s->env));
    } else if (e.key == "timeout") {
      MF_RETURN_IF_ERROR(ParseTimeout(e, &s->timeout_seconds));
    } else if (e.key == "retries") {
      std::string text;
      MF_RETURN_IF_ERROR(GetString(e.value, e.key_mark, e.field, &text));
      if (!absl::SimpleAtoi(text, &s->retries)) {
        return Error(e.value.Mark(), e.field,
                     absl::StrCat("expected a whole number, got '", text, "'"));
      }
      if (s->retries < 0) {
        return Error(e.value.Mark(), e.field, absl::StrCat("must be 0 or more, got ", s->retries));
      }
    }
  }
  if (!has_name) return Error(s->mark, s->field, "missing required field 'name'");
  if (kinds.size() > 1) {
    return Error(
        kinds[1]->key_mark, s->field,
        absl::StrCat("stage '", s->name, "' has both '", kinds[0]->key, "' and '", kinds[1]->key,
                     "'; give exactly one of exec, shell, docker_build, docker_run, "
                     "docker_push"));
  }
  if (kinds.empty()) {
    return Error(s->mark, s->field,
                 absl::StrCat("stage '", s->name,
                              "' needs one of 'exec' (an argv list), 'shell' (a /bin/sh script), "
                              "'docker_build', 'docker_run' or 'docker_push'"));
  }
  return absl::OkStatus();
}

absl::Status Compiler::Parse(const YAML::Node& root, const ExpandOptions& options,
                             Pipeline* p) const {
  if (!root.IsMap()) {
    return Error(root.Mark(), "pipeline",
                 absl::StrCat("expected a mapping with a 'stages' list, got ", KindOf(root)));
  }
  std::vector<Entry> entries;
  MF_RETURN_IF_ERROR(Entries(root, root.Mark(), "", &entries));
  MF_RETURN_IF_ERROR(
      CheckAllowed(entries, "", {"name", "matrix", "params", "secrets", "env", "stages"}));
  const Entry* stages = nullptr;
  // The matrix comes first wherever it is written: params and `when` need its
  // axes. Params and secrets come before the stages, which refer to them.
  bool has_matrix = false;
  for (const Entry& e : entries) {
    if (e.key == "matrix") {
      MF_RETURN_IF_ERROR(ParseMatrix(e, options, p));
      has_matrix = true;
    }
  }
  if (!has_matrix) {
    MF_RETURN_IF_ERROR(ApplyAxisOptions(options, p));  // any --axis is an error
    p->file_cells.push_back(Cell{});                   // one cell without axes
    p->cells = p->file_cells;
  }
  for (const Entry& e : entries) {
    if (e.key == "params") {
      MF_RETURN_IF_ERROR(ParseParams(e, p));
    } else if (e.key == "secrets") {
      MF_RETURN_IF_ERROR(ParseSecrets(e, p));
    } else if (e.key == "name") {
      MF_RETURN_IF_ERROR(GetString(e.value, e.key_mark, e.field, &p->name));
      if (p->name.empty()) return Error(e.value.Mark(), e.field, "must not be empty");
    } else if (e.key == "env") {
      MF_RETURN_IF_ERROR(ParseEnv(e, "environment variable", &p->env));
    } else if (e.key == "stages") {
      stages = &e;
    }
  }
  if (stages == nullptr) {
    return Error(root.Mark(), "stages", "missing: a pipeline needs a non-empty 'stages' list");
  }
  const YAML::Node& list = stages->value;
  if (!list.IsSequence()) {
    return Error(MarkOf(list, stages->key_mark), stages->field,
                 absl::StrCat("expected a list of stages, got ", KindOf(list)));
  }
  if (list.size() == 0) return Error(list.Mark(), stages->field, "must list at least one stage");
  p->stages_mark = stages->key_mark;
  std::map<std::string, int> first_line;
  for (size_t i = 0; i < list.size(); ++i) {
    Stage s;
    MF_RETURN_IF_ERROR(ParseStage(list[i], list.Mark(), i, *p, &s));
    auto [it, inserted] = first_line.emplace(s.name, s.mark.line + 1);
    if (!inserted) {
      return Error(s.mark, Child(s.field, "name"),
                   absl::StrCat("duplicate stage name '", s.name, "' (first defined on line ",
                                it->second, ")"));
    }
    p->stages.push_back(std::move(s));
  }
  return ApplyOptions(options, p);
}

// Where in the file byte `offset` of `t`'s value is. Exact for plain and quoted
// one-line scalars without escapes and for literal blocks ('|'), which is where
// long shell scripts live; otherwise the start of the scalar.
YAML::Mark Compiler::Locate(const Text& t, size_t offset) const {
  const YAML::Mark m = t.mark;
  if (m.pos < 0 || static_cast<size_t>(m.pos) >= yaml_.size()) return m;
  const absl::string_view value = t.value;
  const char first = yaml_[m.pos];
  if (first == '|') {
    size_t k = 0;
    size_t line_start = 0;
    for (size_t i = 0; i < offset && i < value.size(); ++i) {
      if (value[i] == '\n') {
        ++k;
        line_start = i + 1;
      }
    }
    size_t line_end = value.find('\n', line_start);
    if (line_end == absl::string_view::npos) line_end = value.size();
    const absl::string_view value_line = value.substr(line_start, line_end - line_start);
    // Content line k is file line m.line + 1 + k.
    size_t pos = m.pos;
    for (size_t n = 0; n <= k; ++n) {
      pos = yaml_.find('\n', pos);
      if (pos == absl::string_view::npos) return m;
      ++pos;
    }
    size_t end = yaml_.find('\n', pos);
    if (end == absl::string_view::npos) end = yaml_.size();
    absl::string_view file_line = yaml_.substr(pos, end - pos);
    if (!file_line.empty() && file_line.back() == '\r') file_line.remove_suffix(1);
    if (file_line.size() < value_line.size() ||
        file_line.substr(file_line.size() - value_line.size()) != value_line) {
      return m;
    }
    YAML::Mark out;
    out.line = m.line + 1 + static_cast<int>(k);
    out.column = static_cast<int>(file_line.size() - value_line.size() + offset - line_start);
    out.pos = static_cast<int>(pos + out.column);
    return out;
  }
  if (value.find('\n') == absl::string_view::npos) {
    const size_t q = (first == '"' || first == '\'') ? 1 : 0;
    if (yaml_.substr(m.pos + q, value.size()) == value) {
      YAML::Mark out = m;
      out.column += static_cast<int>(q + offset);
      out.pos += static_cast<int>(q + offset);
      return out;
    }
  }
  return m;
}

absl::StatusOr<std::string> Compiler::Substitute(const Text& t, const std::vector<Var>& vars,
                                                 absl::string_view where) const {
  std::string out;
  out.reserve(t.value.size());
  MF_RETURN_IF_ERROR(SubstituteSpan(t, 0, t.value.size(), vars, where, &out));
  return out;
}

// Substitutes t.value[begin, end) into *out. Positions stay those of t.value,
// so errors inside a `${name:-default}` point at the right column.
absl::Status Compiler::SubstituteSpan(const Text& t, size_t begin, size_t end,
                                      const std::vector<Var>& vars, absl::string_view where,
                                      std::string* out) const {
  const std::string& in = t.value;
  size_t i = begin;
  while (i < end) {
    if (in.compare(i, 3, "$${") == 0 && i + 3 <= end) {
      *out += "${";
      i += 3;
      continue;
    }
    if (in.compare(i, 2, "${") != 0 || i + 2 > end) {
      *out += in[i++];
      continue;
    }
    // The name runs to '}' or to ":-", which starts a default that may itself
    // hold ${...}: find the '}' that closes this reference.
    size_t close = i + 2;
    while (close < end && in[close] != '}' && in.compare(close, 2, ":-") != 0) ++close;
    size_t default_begin = std::string::npos;
    if (close < end && in[close] != '}') {
      default_begin = close + 2;
      int depth = 0;
      size_t j = default_begin;
      for (; j < end; ++j) {
        if (in.compare(j, 3, "$${") == 0) {
          // A literal "${...}" in the default: its '}' closes it, not us.
          ++depth;
          j += 2;
        } else if (in.compare(j, 2, "${") == 0) {
          ++depth;
          ++j;
        } else if (in[j] == '}') {
          if (depth == 0) break;
          --depth;
        }
      }
      close = j;
    }
    if (close >= end) {
      return Error(Locate(t, i), t.field, "unterminated '${' (write '$${' for a literal '${')");
    }
    const size_t name_end = default_begin == std::string::npos ? close : default_begin - 2;
    absl::string_view name = absl::string_view(in).substr(i + 2, name_end - i - 2);
    const bool matrix_only = absl::ConsumePrefix(&name, "matrix.");
    const Var* found = nullptr;
    for (const Var& v : vars) {
      if (v.name == name && !(matrix_only && v.param)) found = &v;
    }
    if (found == nullptr) {
      std::vector<std::string> known;
      for (const Var& v : vars) known.push_back(v.name);
      // Secret values never reach the parser; a stage gets them through `secrets`.
      const std::string secret =
          Contains(secrets_, name)
              ? absl::StrCat("; '", name,
                             "' is a secret, which is never substituted: list it in the stage's "
                             "'secrets' to pass it to the task")
              : "";
      return Error(
          Locate(t, i), t.field,
          absl::StrCat("unknown variable '", name, "'", where, " (known: ", ListOrNone(known),
                       "; write '$${' for a literal '${'", secret, ")"));
    }
    if (default_begin != std::string::npos && found->value.empty()) {
      // Shell's ${name:-word}: the default when the value is empty.
      MF_RETURN_IF_ERROR(SubstituteSpan(t, default_begin, close, vars, where, out));
    } else {
      if (default_begin != std::string::npos) {
        // Not used here, but checked all the same: a pipeline must not pass
        // for one submitter and break for the next who leaves `name` empty.
        std::string unused;
        MF_RETURN_IF_ERROR(SubstituteSpan(t, default_begin, close, vars, where, &unused));
      }
      *out += found->value;
    }
    i = close + 1;
  }
  return absl::OkStatus();
}

// An error about `t`'s substituted value; when a variable made the value, the
// message says so and names the cell, as for `needs`.
absl::Status Compiler::Invalid(const Text& t, absl::string_view where,
                               absl::string_view what) const {
  if (t.value.find("${") == std::string::npos) return Error(t.mark, t.field, what);
  return Error(t.mark, t.field, absl::StrCat(what, " (from '", t.value, "'", where, ")"));
}

absl::Status Compiler::SubstituteAll(const std::vector<Text>& texts, const std::vector<Var>& vars,
                                     absl::string_view where, bool non_empty,
                                     google::protobuf::RepeatedPtrField<std::string>* out) const {
  for (const Text& t : texts) {
    MF_ASSIGN_OR_RETURN(std::string value, Substitute(t, vars, where));
    if (non_empty && value.empty()) return Invalid(t, where, "must not be empty");
    out->Add(std::move(value));
  }
  return absl::OkStatus();
}

// Fills `run`'s `kind` oneof for one cell. Checks that need the final value
// run here, after substitution, so a variable cannot smuggle in a relative
// path or an empty image.
absl::Status Compiler::ExpandKind(const Stage& st, const std::vector<Var>& vars,
                                  absl::string_view where, v1::StageSpec* run) const {
  auto sub = [&](const Text& t) { return Substitute(t, vars, where); };
  switch (st.kind) {
    case Kind::kExec: {
      v1::ExecStage& exec = *run->mutable_exec();
      MF_RETURN_IF_ERROR(SubstituteAll(st.argv, vars, where, false, exec.mutable_argv()));
      exec.set_shell(st.shell);
      return absl::OkStatus();
    }
    case Kind::kDockerBuild: {
      const DockerBuild& in = st.docker_build;
      v1::DockerBuildStage& out = *run->mutable_docker_build();
      MF_ASSIGN_OR_RETURN(*out.mutable_context(), sub(in.context));
      if (out.context().empty()) return Invalid(in.context, where, "must not be empty");
      MF_ASSIGN_OR_RETURN(*out.mutable_dockerfile(), sub(in.dockerfile));
      for (const EnvVar& arg : in.build_args) {
        MF_ASSIGN_OR_RETURN((*out.mutable_build_args())[arg.name], sub(arg.value));
      }
      MF_RETURN_IF_ERROR(SubstituteAll(in.tags, vars, where, true, out.mutable_tags()));
      out.set_push(in.push);
      MF_ASSIGN_OR_RETURN(*out.mutable_target(), sub(in.target));
      MF_ASSIGN_OR_RETURN(*out.mutable_network(), sub(in.network));
      return absl::OkStatus();
    }
    case Kind::kDockerRun: {
      const DockerRun& in = st.docker_run;
      v1::DockerRunStage& out = *run->mutable_docker_run();
      MF_ASSIGN_OR_RETURN(*out.mutable_image(), sub(in.image));
      if (out.image().empty()) return Invalid(in.image, where, "must not be empty");
      MF_RETURN_IF_ERROR(SubstituteAll(in.command, vars, where, false, out.mutable_command()));
      out.set_privileged(in.privileged);
      MF_ASSIGN_OR_RETURN(*out.mutable_shm_size(), sub(in.shm_size));
      if (!out.shm_size().empty()) {
        if (absl::Status valid = ValidateShmSize(out.shm_size()); !valid.ok()) {
          return Invalid(in.shm_size, where, valid.message());
        }
      }
      MF_RETURN_IF_ERROR(SubstituteAll(in.devices, vars, where, true, out.mutable_devices()));
      for (const Text& m : in.mounts) {
        MF_ASSIGN_OR_RETURN(std::string spec, sub(m));
        if (absl::Status valid = ParseMount(spec, out.add_mounts()); !valid.ok()) {
          return Invalid(m, where, valid.message());
        }
      }
      MF_ASSIGN_OR_RETURN(*out.mutable_network(), sub(in.network));
      for (const Text& c : in.collect) {
        MF_ASSIGN_OR_RETURN(std::string path, sub(c));
        if (!IsAbsolute(path)) {
          return Invalid(c, where, absl::StrCat("'", path, "' is not an absolute path"));
        }
        out.add_collect(std::move(path));
      }
      MF_ASSIGN_OR_RETURN(*out.mutable_user(), sub(in.user));
      MF_ASSIGN_OR_RETURN(*out.mutable_workdir(), sub(in.workdir));
      if (!out.workdir().empty() && !IsAbsolute(out.workdir())) {
        return Invalid(in.workdir, where,
                       absl::StrCat("'", out.workdir(), "' is not an absolute path"));
      }
      return absl::OkStatus();
    }
    case Kind::kDockerPush: {
      v1::DockerPushStage& out = *run->mutable_docker_push();
      return SubstituteAll(st.docker_push.images, vars, where, true, out.mutable_images());
    }
  }
  return absl::OkStatus();  // unreachable: every Kind is handled above
}

// Whether `s`'s `when` matches `cell` on its axis keys; params are not looked at.
bool MatchesAxes(const Stage& s, const Cell& cell) {
  for (const Condition& c : s.when) {
    if (c.axis >= 0 && !Contains(c.values, cell.values[c.axis])) return false;
  }
  return true;
}

// Whether `s`'s `when` matches the params' effective values; axes are not looked at.
bool MatchesParams(const Stage& s, const Pipeline& p) {
  for (const Condition& c : s.when) {
    if (c.axis < 0 && !Contains(c.values, FindParam(p, c.param)->value)) return false;
  }
  return true;
}

// A dependency edge: stage `stage` (index into Pipeline::stages) through needs[`item`].
struct Dep {
  size_t stage;
  size_t item;
  bool substituted;  // the name came from a ${var}, so the edge may depend on the cell
};

absl::StatusOr<v1::Job> Compiler::Expand(const Pipeline& p, absl::string_view job_id,
                                         absl::string_view name) const {
  const size_t num_stages = p.stages.size();
  std::vector<std::vector<bool>> runs(num_stages, std::vector<bool>(p.cells.size(), false));
  int64_t total = 0;
  for (size_t s = 0; s < num_stages; ++s) {
    const Stage& st = p.stages[s];
    // A `when` whose axis values match none of the file's cells is a mistake
    // in the file. Params and --axis may leave a stage out everywhere: fine.
    bool any = false;
    for (const Cell& cell : p.file_cells) any = any || MatchesAxes(st, cell);
    if (!any) {
      return Error(st.has_when ? st.when_mark : st.mark, Child(st.field, "when"),
                   absl::StrCat("stage '", st.name, "' runs in no matrix cell: check its 'when'"));
    }
    const bool params_match = MatchesParams(st, p);
    for (size_t c = 0; c < p.cells.size(); ++c) {
      runs[s][c] = params_match && MatchesAxes(st, p.cells[c]);
      total += runs[s][c] ? 1 : 0;
    }
  }
  if (total == 0) {
    std::vector<std::string> params;
    for (const Param& param : p.params)
      params.push_back(absl::StrCat(param.name, "=", param.value));
    return Error(
        p.stages_mark, "stages",
        absl::StrCat(
            "no stage runs: every stage's 'when' excludes every cell",
            params.empty() ? "" : absl::StrCat(" with params ", absl::StrJoin(params, ", ")),
            WithAxisOptions(p)));
  }
  if (total > kMaxTasks) {
    return Error(p.stages_mark, "stages",
                 absl::StrCat("the pipeline expands to ", total, " tasks; at most ", kMaxTasks,
                              " are allowed"));
  }
  std::vector<std::string> stage_names;
  for (const Stage& s : p.stages) stage_names.push_back(s.name);

  v1::Job job;
  job.set_id(std::string(job_id));
  job.set_name(std::string(name));
  job.set_pipeline_file(file_);
  for (const Axis& a : p.axes) job.add_axes(a.name);
  for (const Param& param : p.params) (*job.mutable_params())[param.name] = param.value;
  for (const std::string& secret : p.given_secrets) job.add_secrets(secret);

  for (size_t c = 0; c < p.cells.size(); ++c) {
    const Cell& cell = p.cells[c];
    std::vector<Var> vars;
    for (size_t a = 0; a < p.axes.size(); ++a) vars.push_back({p.axes[a].name, cell.values[a]});
    vars.insert(vars.end(), cell.extras.begin(), cell.extras.end());
    for (const Param& param : p.params) vars.push_back({param.name, param.value, true});
    const std::string where = p.axes.empty() ? "" : absl::StrCat(" in cell ", CellDesc(cell));
    const std::string cell_id = absl::StrJoin(cell.values, "-");
    auto task_id = [&](const std::string& stage) {
      return p.axes.empty() ? absl::StrCat(job_id, "/", stage)
                            : absl::StrCat(job_id, "/", cell_id, "/", stage);
    };

    std::vector<v1::Task> tasks(num_stages);
    std::vector<std::vector<Dep>> deps(num_stages);
    for (size_t s = 0; s < num_stages; ++s) {
      if (!runs[s][c]) continue;
      const Stage& st = p.stages[s];
      v1::Task& task = tasks[s];
      task.set_id(task_id(st.name));
      task.set_job_id(std::string(job_id));
      task.set_state(v1::TASK_STATE_PENDING);
      v1::TaskSpec& spec = *task.mutable_spec();
      spec.set_stage(st.name);
      spec.set_display_name(p.axes.empty() ? st.name : absl::StrCat(st.name, " ", CellDesc(cell)));
      for (size_t a = 0; a < p.axes.size(); ++a) {
        v1::MatrixValue& mv = *spec.add_cell();
        mv.set_axis(p.axes[a].name);
        mv.set_value(cell.values[a]);
      }

      for (size_t n = 0; n < st.needs.size(); ++n) {
        const Text& need = st.needs[n].stage;
        MF_ASSIGN_OR_RETURN(std::string dep_name, Substitute(need, vars, where));
        const bool substituted = need.value.find("${") != std::string::npos;
        const std::string from =
            substituted ? absl::StrCat(" (from '", need.value, "'", where, ")") : "";
        size_t d = 0;
        while (d < num_stages && p.stages[d].name != dep_name) ++d;
        if (d == num_stages) {
          return Error(need.mark, need.field,
                       absl::StrCat("unknown stage '", dep_name, "'", from,
                                    " (stages are: ", absl::StrJoin(stage_names, ", "), ")"));
        }
        if (d == s) {
          return Error(need.mark, need.field,
                       absl::StrCat("stage '", st.name, "' needs itself", from));
        }
        if (!runs[d][c]) {
          if (st.needs[n].optional) continue;  // what optional is for
          const std::string example = p.axes.empty() ? "variant" : p.axes[0].name;
          return Error(need.mark, need.field,
                       absl::StrCat("stage '", dep_name, "' does not run in cell ", CellDesc(cell),
                                    " (its 'when' excludes it); give stage '", st.name,
                                    "' a 'when' that excludes this cell too, pick the stage per "
                                    "cell with a variable, e.g. needs: [\"${",
                                    example, "}\"], or make the need optional: {stage: ", dep_name,
                                    ", optional: true}"));
        }
        bool dup = false;
        for (const Dep& have : deps[s]) dup = dup || have.stage == d;
        if (dup) continue;  // harmless: the task needs it once
        deps[s].push_back({d, n, substituted});
        spec.add_needs(task_id(dep_name));
      }

      v1::StageSpec& run = *spec.mutable_run();
      MF_RETURN_IF_ERROR(ExpandKind(st, vars, where, &run));
      for (const std::vector<EnvVar>* env : {&p.env, &st.env}) {
        for (const EnvVar& e : *env) {  // stage env is second, so it overrides per key
          MF_ASSIGN_OR_RETURN(std::string value, Substitute(e.value, vars, where));
          (*run.mutable_env())[e.name] = std::move(value);
        }
      }
      run.set_timeout_seconds(st.timeout_seconds);
      run.set_retries(st.retries);
      for (const std::string& secret : st.secrets) run.add_secrets(secret);
      if (st.has_gpus) {
        MF_ASSIGN_OR_RETURN(std::string text, Substitute(st.gpus, vars, where));
        int32_t gpus = 0;
        if (!ParseGpuCount(text, &gpus)) return Invalid(st.gpus, where, GpuCountError(text));
        run.set_gpus(gpus);
      }
      for (const Text& label : st.labels) {
        MF_ASSIGN_OR_RETURN(std::string value, Substitute(label, vars, where));
        if (absl::Status valid = ValidateLabel(value); !valid.ok()) {
          return Error(label.mark, label.field, valid.message());
        }
        run.add_labels(std::move(value));
      }
    }

    // Kahn's algorithm taking the lowest stage index first: the result is the
    // file order wherever the dependencies allow it.
    std::vector<int> waiting(num_stages, 0);
    std::vector<std::vector<size_t>> dependants(num_stages);
    std::set<size_t> ready;
    for (size_t s = 0; s < num_stages; ++s) {
      if (!runs[s][c]) continue;
      waiting[s] = static_cast<int>(deps[s].size());
      for (const Dep& d : deps[s]) dependants[d.stage].push_back(s);
      if (waiting[s] == 0) ready.insert(s);
    }
    std::vector<bool> done(num_stages, false);
    std::vector<size_t> order;
    while (!ready.empty()) {
      const size_t s = *ready.begin();
      ready.erase(ready.begin());
      done[s] = true;
      order.push_back(s);
      for (size_t t : dependants[s]) {
        if (--waiting[t] == 0) ready.insert(t);
      }
    }
    size_t running = 0;
    for (size_t s = 0; s < num_stages; ++s) running += runs[s][c] ? 1 : 0;
    if (order.size() != running) {
      // Every stage left waits on another one left, so following the first
      // such dependency from any of them must come back round: a cycle.
      size_t start = 0;
      while (!runs[start][c] || done[start]) ++start;
      std::vector<size_t> path;
      std::vector<int> seen_at(num_stages, -1);
      size_t at = start;
      while (seen_at[at] < 0) {
        seen_at[at] = static_cast<int>(path.size());
        path.push_back(at);
        for (const Dep& d : deps[at]) {
          if (!done[d.stage]) {
            at = d.stage;
            break;
          }
        }
      }
      std::vector<size_t> cycle(path.begin() + seen_at[at], path.end());
      // Name the cycle from its first stage in the file, so the message does
      // not depend on where the search happened to enter it.
      size_t first = 0;
      for (size_t i = 1; i < cycle.size(); ++i) {
        if (cycle[i] < cycle[first]) first = i;
      }
      std::vector<std::string> names;
      bool substituted = false;
      const Text* blame = nullptr;
      for (size_t i = 0; i < cycle.size(); ++i) {
        const size_t s = cycle[(first + i) % cycle.size()];
        const size_t next = cycle[(first + i + 1) % cycle.size()];
        names.push_back(p.stages[s].name);
        for (const Dep& d : deps[s]) {
          if (d.stage != next) continue;
          substituted = substituted || d.substituted;
          if (blame == nullptr) blame = &p.stages[s].needs[d.item].stage;
        }
      }
      names.push_back(p.stages[cycle[first]].name);
      return Error(blame->mark, blame->field,
                   absl::StrCat("dependency cycle: ", absl::StrJoin(names, " -> "),
                                substituted ? where : ""));
    }
    for (size_t s : order) *job.add_tasks() = std::move(tasks[s]);
  }
  return job;
}

}  // namespace

absl::StatusOr<v1::Job> ParseAndExpand(absl::string_view yaml, absl::string_view file,
                                       absl::string_view job_id, absl::string_view name_override) {
  ExpandOptions options;
  options.name_override = std::string(name_override);
  return ParseAndExpand(yaml, file, job_id, options);
}

absl::StatusOr<v1::Job> ParseAndExpand(absl::string_view yaml, absl::string_view file,
                                       absl::string_view job_id, const ExpandOptions& options) {
  Compiler compiler(yaml, file);
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(std::string(yaml));
    if (docs.empty()) {
      return compiler.Error(YAML::Mark::null_mark(), "pipeline",
                            "the file is empty; expected a mapping with a 'stages' list");
    }
    if (docs.size() > 1) {
      return compiler.Error(docs[1].Mark(), "pipeline",
                            absl::StrCat("the file holds ", docs.size(),
                                         " YAML documents; a pipeline is a single document"));
    }
    Pipeline p;
    MF_RETURN_IF_ERROR(compiler.Parse(docs[0], options, &p));
    compiler.set_secrets(p.secrets);
    std::string name = options.name_override;
    if (name.empty()) name = p.name;
    if (name.empty()) name = BaseName(file);
    return compiler.Expand(p, job_id, name);
  } catch (const YAML::Exception& e) {
    // An unquoted ${var} inside [ ] or { } ends the flow collection early and
    // yaml-cpp only says "end of ... flow not found"; name the likely cause.
    std::string hint;
    if (e.mark.line >= 0) {
      const std::vector<absl::string_view> lines = absl::StrSplit(yaml, '\n');
      if (static_cast<size_t>(e.mark.line) < lines.size() &&
          absl::StrContains(lines[e.mark.line], "${") && absl::StrContains(e.msg, "flow")) {
        hint = " (inside [ ] or { }, quote strings that hold '${...}')";
      }
    }
    return compiler.Error(e.mark, "yaml", absl::StrCat("syntax error: ", e.msg, hint));
  }
}

}  // namespace musafarm::pipeline
