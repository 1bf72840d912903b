#pragma once

// The command-line options a pipeline declares under `options:`, which
// `musafarm submit` adds to its own: each becomes a param, a matrix axis, a
// secret, or (a flag, which takes no value) a fixed param or axis value.
// docs/pipeline.md ("Options") describes the format.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "pipeline/input_decl.h"

namespace musafarm::pipeline {

struct OptionDecl {
  enum class Kind { kParam, kAxis, kSecret, kFlag };

  std::string long_name;   // without "--": "python_version"
  std::string short_name;  // one letter without "-", or empty
  std::string help;
  Kind kind = Kind::kParam;
  // What it sets: the param (which may name one axis as "${AXIS}", see
  // `per_axis`), the axis or the secret; for a flag, the param or axis
  // (`flag_kind`) that it sets to `flag_value`.
  std::string target;
  Kind flag_kind = Kind::kParam;
  std::string flag_value;
  // Axis options: the values may be comma-separated and the option repeated.
  bool list = false;
  // Applied when neither this option nor any other sets the target.
  bool has_default = false;
  std::string default_value;
  // Param options: the value also names the job.
  bool names_job = false;
  // A param option whose target holds "${AXIS}" applies to one value of that
  // axis: the one the other options chose, else `axis_default`, the axis's
  // first value in the file (which the option then chooses).
  std::string per_axis;
  std::string axis_default;
  // More long names for the same option, e.g. "python_verison", as
  // torch_musa's getopt spells --python_version (issue 18).
  std::vector<std::string> aliases;
  // Param options: prefixes removed from the front of the value, each as
  // often as it occurs, before it becomes the param ("docker/", "./": build.sh
  // users pass -f docker/ubuntu/dockerfile.dev or ./ubuntu/dockerfile.dev).
  std::vector<std::string> strip_prefixes;
  // Printed (to stderr) when the option is given: what it does or why it
  // does nothing here.
  std::string note;
};

// "-t/--tag" or "--mudnn_url": how messages name an option.
std::string OptionDisplay(const OptionDecl& o);
// The long name and the aliases.
std::vector<std::string> LongNames(const OptionDecl& o);
// `value` without `o.strip_prefixes` at its front.
std::string StripPrefixes(const OptionDecl& o, std::string value);
// "param tag", "axis python", "secret MUDNN_URL", "axis variant = release".
std::string OptionBecomes(const OptionDecl& o);

// What a submitter needs to turn options into params, axes and secrets.
struct PipelineOptions {
  std::vector<OptionDecl> options;  // in file order
  std::vector<std::string> axes;    // the matrix axes, in file order
  // Each axis's values as the file gives them: `--torch_whl_url 3.8=URL`
  // names a cell by one (pipeline/cell_values.h).
  std::map<std::string, std::vector<std::string>> axis_values;
  std::vector<InputDecl> inputs;  // `inputs:`, in file order
};

}  // namespace musafarm::pipeline
