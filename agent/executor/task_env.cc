#include "agent/executor/task_env.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/env_name.h"
#include "common/secret_forms.h"

namespace musafarm::agent {

absl::StatusOr<EnvMap> StageSecrets(const v1::Assignment& assignment) {
  EnvMap secrets;
  for (const std::string& name : assignment.run().secrets()) {
    if (!IsEnvName(name)) {
      // The name only: it is not secret, and the value must never be shown.
      return absl::InvalidArgumentError(
          absl::StrCat("secret name '", name, "' is not an environment variable name"));
    }
    auto it = assignment.secrets().find(name);
    if (it != assignment.secrets().end()) secrets[name] = it->second;
  }
  return secrets;
}

EnvMap GpuEnv(const std::string& vendor, const v1::Assignment& assignment, bool host_process) {
  EnvMap env;
  if (assignment.gpu_ids().empty()) return env;
  const std::string ids = absl::StrJoin(assignment.gpu_ids(), ",");
  env["MUSAFARM_VISIBLE_GPUS"] = ids;
  const bool nvidia = vendor == "nvidia";
  env[nvidia ? "NVIDIA_VISIBLE_DEVICES" : "MTHREADS_VISIBLE_DEVICES"] = ids;
  // A process on the host is not behind a container runtime: the vendor's
  // user-space runtime reads its own variable.
  if (host_process) env[nvidia ? "CUDA_VISIBLE_DEVICES" : "MUSA_VISIBLE_DEVICES"] = ids;
  return env;
}

std::vector<std::string> SecretValues(const v1::Assignment& assignment) {
  std::vector<std::string> values;
  for (const auto& [name, value] : assignment.secrets()) values.push_back(value);
  return values;
}

std::vector<std::string> SecretMaskForms(const v1::Assignment& assignment) {
  std::vector<std::string> forms;
  for (const auto& [name, value] : assignment.secrets()) {
    std::vector<std::string> declared;
    if (auto it = assignment.run().secret_forms().find(name);
        it != assignment.run().secret_forms().end()) {
      declared.assign(it->second.forms().begin(), it->second.forms().end());
    }
    // Registry credentials are written base64'd into a DOCKER_CONFIG.
    if (assignment.run().docker_push().registry_auth() == name) declared.push_back("base64");
    for (std::string& f : SecretForms(value, declared)) forms.push_back(std::move(f));
  }
  return forms;
}

}  // namespace musafarm::agent
