#pragma once

// torch_musa's docker/build.sh and build_base.sh options, as `musafarm submit`
// accepts them, mapped onto pipeline params, matrix axes and secrets. Release
// engineers keep their muscle memory; the pipeline (pipelines/torch_musa.yaml)
// says what each one does.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace musafarm::cli {

// What was given on the command line; unset options are std::nullopt / empty.
struct ScriptOptions {
  std::optional<std::string> name;            // -n/--name
  std::optional<std::string> tag;             // -t/--tag
  std::optional<std::string> sys;             // -s/--sys
  std::vector<std::string> python_versions;   // -v/--python_version (repeatable, commas)
  std::optional<std::string> base_img;        // -b/--base_img
  std::optional<std::string> docker_file;     // -f/--docker_file
  bool release = false;                       // -r/--release
  std::vector<std::string> variants;          // --variant (repeatable, commas)
  std::optional<std::string> torch_musa_tag;  // --torch_musa_tag
  // Secret URLs: -m/--musa_toolkits_url, --mudnn_url, --mccl_url,
  // --torch_whl_url, --torch_musa_whl_url.
  std::optional<std::string> musa_toolkits_url, mudnn_url, mccl_url, torch_whl_url,
      torch_musa_whl_url;
  // Generic forms: --param NAME=VALUE, --axis AXIS=V1,V2, --secret NAME (value
  // from the environment variable NAME).
  std::vector<std::string> params, axes, secrets;
};

// The request parts they turn into. `origin` says which option set each param,
// axis or secret, for messages ("-t/--tag").
struct SubmitParts {
  std::map<std::string, std::string> params;
  std::vector<std::pair<std::string, std::vector<std::string>>> axes;
  std::map<std::string, std::string> secrets;  // name -> value
  std::map<std::string, std::string> origin;   // "param tag" / "axis python" / "secret X" -> option
};

// Looks an environment variable up: returns nullopt when unset. Injected so
// tests need not touch the process environment.
using EnvLookup = std::optional<std::string> (*)(const char* name);
std::optional<std::string> ProcessEnv(const char* name);

// Errors (InvalidArgument) name the option: "-v/--python_version: empty
// version in '3.8,,3.9'", "--secret MUSA_URL: environment variable MUSA_URL is
// not set", "-r/--release and --variant dev: pick one". Never a secret value.
absl::StatusOr<SubmitParts> MapScriptOptions(const ScriptOptions& options, EnvLookup env);

// Rewrites a pipeline error about an option ("FILE: --param tag: ...") to name
// the option the user typed ("FILE: -t/--tag (param tag): ...").
std::string ExplainOrigin(const std::string& message, const SubmitParts& parts);

}  // namespace musafarm::cli
