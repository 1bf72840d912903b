#pragma once

// The compiler's in-memory form of a pipeline file, between reading it
// (stages.h, matrix.h, spec.cc) and expanding it into a job (dag.h). Internal
// to pipeline/: the public interface is spec.h.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/env_name.h"
#include "pipeline/input_decl.h"
#include "pipeline/option_decl.h"
#include "yaml-cpp/yaml.h"

namespace musafarm::pipeline {

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
  bool given = false;  // by ExpandOptions::params: then the file's per-cell defaults yield
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
  std::string registry_auth;  // a declared secret's name, or ""
};

// One `suites` entry (pipeline/suites.h).
struct Suite {
  std::string name;
  std::string field;  // "stages[3].suites[0]"
  YAML::Mark mark;
  Text output;
  Text exit_status;
  Text junit;  // "" when absent
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
  std::vector<Text> collect;  // kExec: work-dir-relative paths (the stage key `collect`)
  YAML::Mark collect_mark;
  DockerBuild docker_build;
  DockerRun docker_run;
  DockerPush docker_push;
  std::vector<Suite> suites;  // docker_run only
  bool has_gpu_arch = false;
  Text gpu_arch;  // "any", "" or an architecture once substituted (gpu_arch.h)
  std::vector<EnvVar> env;
  int64_t timeout_seconds = 0;
  int32_t retries = 0;
};

// A per-cell param or secret value (cell_values.h): NAME@AXIS=VALUE.
struct CellValue {
  std::string name;        // the declared param or secret
  int axis = -1;           // index into Pipeline::axes
  std::string axis_value;  // the cells it applies to
  std::string key;         // "NAME@AXIS=VALUE", the job secret's name for a secret
  std::string value;       // a param's value ("" for a secret: never here)
  bool from_file = false;  // a per-cell default under `params:`, not a submitter's value
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
  // Extra forms a declaration lists (`{name: X, forms: [base64]}`), by name.
  std::map<std::string, std::vector<std::string>> secret_forms;
  std::vector<std::string> given_secrets;  // ExpandOptions::secrets, sorted, unique
  std::vector<CellValue> cell_params;      // per-cell params (cell_values.h)
  std::vector<CellValue> cell_secrets;     // per-cell secrets, names only
  std::vector<EnvVar> env;
  std::vector<Stage> stages;
  std::vector<OptionDecl> options;  // `options:`, in file order
  std::vector<InputDecl> inputs;    // `inputs:`, in file order (inputs.h)
  int max_gpus_per_stage = 64;      // ExpandOptions::max_gpus_per_stage
  int64_t retention_seconds = 0;    // `retention:` (Job.retention_seconds); 0: the farm's
};

bool Contains(const std::vector<std::string>& list, absl::string_view value);
// "A, B" or "none".
std::string ListOrNone(const std::vector<std::string>& names);
// Whether `s` is non-empty and every character passes `ok`.
bool AllOf(absl::string_view s, bool (*ok)(char));
// Stage and axis names: letters, digits, '_' and '-'.
bool IsNameChar(char c);
// Matrix values, which become part of task ids.
bool IsCellValueChar(char c);
// Environment variable and build argument names: IsEnvName, common/env_name.h.
bool IsAbsolute(absl::string_view path);
// "(dev, 3.8)"
std::string CellDesc(const Cell& cell);
int AxisIndex(const Pipeline& p, absl::string_view name);
std::vector<std::string> AxisNames(const Pipeline& p);
const Param* FindParam(const Pipeline& p, absl::string_view name);
std::vector<std::string> ParamNames(const Pipeline& p);
// " (with --axis python)" for messages about cells that ExpandOptions::axes
// changed; "" when it changed none.
std::string WithAxisOptions(const Pipeline& p);
// "(declared: A, B)" or "(the pipeline declares no secrets)".
std::string Declared(const std::vector<std::string>& names, absl::string_view what);

}  // namespace musafarm::pipeline
