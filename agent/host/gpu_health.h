#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/host/gpu.h"

namespace musafarm::agent {

// The probe command of a vendor's tool for one GPU, "{gpu}" standing for its
// index: mthreads: `mthreads-gmi -q -i {gpu}`, nvidia: `nvidia-smi -q -i
// {gpu}`; empty (no probe) for another vendor or none.
std::vector<std::string> DefaultGpuProbeCommand(const std::string& vendor);

// Probes GPUs one at a time with a command (issue 16, item 3): argv, never a
// shell, each "{gpu}" in it replaced by the GPU's index (GpuProbe, bounded by
// `timeout`). A GPU fails when the command cannot run, exits non-zero or
// times out; a failed GPU is fenced (the agent advertises it and the
// coordinator hands it out no more) until a probe passes again. The agent
// probes every GPU at start, the GPUs of each GPU attempt when it ends
// (between GPU tasks), and, on this class's own thread, the fenced ones every
// `recheck`. `on_change` runs (on the calling thread, or the recheck thread)
// whenever the fenced set changes. Thread-safe.
class GpuHealth {
 public:
  GpuHealth(const GpuProbe* probe, std::vector<std::string> argv, int gpus,
            absl::Duration timeout, std::function<void()> on_change);
  ~GpuHealth();  // Stop()
  GpuHealth(const GpuHealth&) = delete;
  GpuHealth& operator=(const GpuHealth&) = delete;

  // Probes `gpus` (blocks); returns "" when all pass, else why the failed
  // ones failed ("GPU 1: exit 1: <first line of output>; ..."). Concurrent
  // checks of one GPU: the last verdict stands.
  std::string Check(const std::vector<int32_t>& gpus) ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<int32_t> AllGpus() const;
  // The fenced GPUs with why, for heartbeats. Does not block on a probe.
  std::map<int32_t, std::string> Fenced() const ABSL_LOCKS_EXCLUDED(mu_);
  // Rechecks fenced GPUs every `recheck` on a thread of its own.
  void Start(absl::Duration recheck) ABSL_LOCKS_EXCLUDED(mu_);
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  std::string ProbeOne(int32_t gpu) const;

  const GpuProbe* const probe_;
  const std::vector<std::string> argv_;
  const int gpus_;
  const absl::Duration timeout_;
  const std::function<void()> on_change_;
  mutable absl::Mutex mu_;
  std::map<int32_t, std::string> fenced_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace musafarm::agent
