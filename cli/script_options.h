#pragma once

// The options a pipeline declares for `musafarm submit` (`options:` in the
// file, pipeline/option_decl.h), and submit's generic --param, --axis and
// --secret, mapped onto the params, matrix axes and secrets of a submit
// request. The CLI knows no pipeline's options: the file says what each is.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "pipeline/option_decl.h"

namespace musafarm::cli {

// What was typed.
struct GivenOptions {
  // Each declared option given, by long name: its values in the order given
  // (a flag: one empty value per use).
  std::map<std::string, std::vector<std::string>> declared;
  // Generic forms: --param NAME=VALUE, --axis AXIS=V1,V2, --secret NAME (value
  // from the environment variable NAME).
  std::vector<std::string> params, axes, secrets;
  // --package-set FILE, or AXISVALUE=FILE items per cell (cli/package_set.h).
  std::vector<std::string> package_sets;
};

// The request parts they turn into. `origin` says which option set each param,
// axis or secret, for messages ("-x/--extra").
struct SubmitParts {
  std::map<std::string, std::string> params;
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;  // in the matrix's order
  std::map<std::string, std::string> secrets;                          // name -> value
  std::map<std::string, std::string> origin;  // "param tag" / "axis python" / "secret X" -> option
  std::string job_name;                       // from an option with `names_job`, or ""
  // "--no_prepare: ..." for each given option that has a `note`, in file order.
  std::vector<std::string> notes;
};

// Looks an environment variable up: returns nullopt when unset. Injected so
// tests need not touch the process environment.
using EnvLookup = std::optional<std::string> (*)(const char* name);
std::optional<std::string> ProcessEnv(const char* name);

// `--secret NAME`: the value of environment variable NAME. INVALID_ARGUMENT
// for a name that is no variable name (NAME=VALUE: never echoing the value)
// or an unset variable.
absl::StatusOr<std::string> SecretFromEnv(const std::string& name, EnvLookup env);

// Errors (InvalidArgument) name the option as typed: "-v/--versions: empty
// value in '3.8,,3.9'", "--secret TOKEN: environment variable TOKEN is not
// set", "-d/--debug and --mode opt: pick one". Never a secret value.
// Declared options are applied in file order, those that set axes first (an
// option whose param depends on an axis reads it), then --axis, then the
// params and secrets, then --param and --secret; then the defaults of options
// whose target nothing set.
absl::StatusOr<SubmitParts> MapSubmitOptions(const pipeline::PipelineOptions& pipeline,
                                             const GivenOptions& given, EnvLookup env);

// Rewrites a pipeline error about an option ("FILE: --param tag: ...") to name
// the option the user typed ("FILE: -x/--extra (param extra): ...").
std::string ExplainOrigin(const std::string& message, const SubmitParts& parts);

// The pipeline file of a `musafarm submit` (or `schedule add NAME`) command
// line, found before the pipeline's own options are known: the first argument
// after `submit` (after NAME) that is not an option, skipping only those
// commands' and the CLI's own options. "" when there is none (the built-in
// pipeline); nullopt when the command is neither. A file given after a pipeline option is not found here; the caller
// says so once the command line is parsed.
std::optional<std::string> PipelineFileArg(int argc, const char* const* argv);

}  // namespace musafarm::cli
