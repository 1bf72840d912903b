#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/subprocess.h"
#include "musafarm/v1/agent_service.pb.h"

namespace musafarm::agent {

// What a task receives from its assignment besides the stage's own `env`:
// secrets and the GPUs it was given. Shared by ExecExecutor and DockerExecutor,
// which differ only in how they pass it on.

// The secrets a stage gets, by name: each name in run.secrets that the
// assignment carries a value for (a name without a value is left out: the
// submitter did not supply it). An error if a name could not be an
// environment variable ([A-Za-z_][A-Za-z0-9_]*), since every executor passes
// secrets through the environment.
absl::StatusOr<EnvMap> StageSecrets(const v1::Assignment& assignment);

// Variables that tell a task which GPUs are its own, for an assignment with
// gpu_ids (empty map without). Always MUSAFARM_VISIBLE_GPUS=<ids>; then, by
// `vendor`, MTHREADS_VISIBLE_DEVICES (mthreads) or NVIDIA_VISIBLE_DEVICES
// (nvidia) with the same ids, which the vendors' container runtimes read;
// for any other vendor MTHREADS_VISIBLE_DEVICES, the farm's usual hardware.
// Ids are comma-joined in the order given, e.g. "0,2". For a `host_process`
// (exec stages) also MUSA_VISIBLE_DEVICES or CUDA_VISIBLE_DEVICES, which the
// MUSA and CUDA runtimes read themselves.
EnvMap GpuEnv(const std::string& vendor, const v1::Assignment& assignment,
              bool host_process = false);

// The secret values of an assignment, for a Redactor: all of them, not only
// the ones the stage names, since any may show up in output.
std::vector<std::string> SecretValues(const v1::Assignment& assignment);

// What the attempt's Redactor masks: every form (common/secret_forms.h) of
// every value, with the extra forms run.secret_forms declares for its name.
std::vector<std::string> SecretMaskForms(const v1::Assignment& assignment);

}  // namespace musafarm::agent
