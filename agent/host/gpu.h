#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace musafarm::agent {

// The GPUs of this host, as the agent advertises them.
struct GpuInventory {
  std::string vendor;  // "mthreads", "nvidia", another declared vendor, or "" for none
  int count = 0;
  std::vector<std::string> models;  // one per GPU when known, in index order; may be empty
};

// What running a program for detection came to.
struct ProbeResult {
  enum class Outcome {
    kExited,    // ran to the end: exit_code and output are meaningful
    kNotFound,  // no such program on PATH
    kTimedOut,  // killed at the deadline
    kFailed,    // could not be run (permissions, pipe, ...); see error
  };
  Outcome outcome = Outcome::kFailed;
  int exit_code = -1;  // kExited only; 128 + signal when a signal ended it
  std::string output;  // stdout only (stderr is discarded), at most kMaxProbeOutput bytes
  std::string error;
};

inline constexpr size_t kMaxProbeOutput = 1 << 20;
inline constexpr absl::Duration kGpuProbeTimeout = absl::Seconds(5);

// Runs a program to learn about GPUs. An interface so that tests never run the
// real mthreads-gmi or nvidia-smi.
class GpuProbe {
 public:
  virtual ~GpuProbe() = default;
  // Runs argv[0] (searched on PATH) with argv, never through a shell, and
  // returns once it has exited or `timeout` has passed. Thread-safe.
  virtual ProbeResult Run(const std::vector<std::string>& argv, absl::Duration timeout) const = 0;
};

// The real probe: posix_spawnp with stdin from /dev/null, stdout to a pipe,
// stderr to /dev/null, default signal dispositions and an empty signal mask
// (the agent blocks SIGTERM and ignores SIGPIPE; the probe must not inherit
// that). The program gets its own process group; at the deadline, and once
// its main process exits, the whole group is killed. Blocks the caller.
class SpawnGpuProbe final : public GpuProbe {
 public:
  ProbeResult Run(const std::vector<std::string>& argv, absl::Duration timeout) const override;
};

// Asks, in order, and takes the first that reports at least one GPU:
//   1. `mthreads-gmi -L` (Moore Threads, MUSA). If it exits non-zero or lists
//      no GPU, plain `mthreads-gmi` and its device table (older tools lack -L).
//      Not run when -L timed out or the program is missing.
//   2. `nvidia-smi -L`.
// Each run is limited to kGpuProbeTimeout. Failures (missing program, non-zero
// exit, timeout, unparsable output) mean "none from that tool", never an error:
// a host without GPUs is normal. Logs at debug what each tool said.
GpuInventory DetectGpus(const GpuProbe& probe);

// Parsers, exposed for tests. Formats accepted:
//
// ParseGpuList (`mthreads-gmi -L`, `nvidia-smi -L`): one GPU per line of the form
//   GPU <index> : <model> (UUID: <uuid>)
// with any spacing around the index and ':' (mthreads-gmi writes "GPU 0 : MTT S4000 (UUID : ...)",
// nvidia-smi "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-...)"), leading blanks, and
// the "(UUID...)" suffix optional. Other lines (headers, nvidia's indented
// "MIG ... Device 0:" lines, blank lines) are ignored, so MIG slices do not add GPUs.
std::vector<std::string> ParseGpuList(const std::string& output);
//
// ParseMthreadsGmiTable (plain `mthreads-gmi`): the device table, e.g.
//   ID   Name           |PCIe                |%GPU  Mem
//   +-------------------------------------------------------------+
//   0    MTT S4000      |00000000:3a:00.0    |0%    3MiB(49152MiB)
//        Physical       |16x(16x)            |47C   YES
// A device row starts (after blanks and an optional '|') with a decimal index,
// then blanks, then a model that begins with a letter and runs to the next '|',
// the next run of two or more blanks, or the end of the line. Everything from a
// line starting "Processes" on is ignored (process rows also start with a GPU
// index, followed by a numeric PID), and a repeated index counts once.
std::vector<std::string> ParseMthreadsGmiTable(const std::string& output);

// Labels that advertise `inv`: {"gpu=<vendor>", "gpus=<count>", "gpu.model=<model>"...},
// one gpu.model per distinct model, in first-seen order. Model names have
// blanks replaced by '_' and anything but [A-Za-z0-9_.-/] dropped, so every
// label passes ValidateLabel. Empty when there is no GPU (no vendor or count 0).
std::vector<std::string> GpuLabels(const GpuInventory& inv);

// Appends each of `extra` whose key (text before '=') is not already a key of
// `labels` as given: the user's own labels win.
std::vector<std::string> MergeLabels(std::vector<std::string> labels,
                                     const std::vector<std::string>& extra);

// The GPU flags of musafarm-agent.
struct GpuFlags {
  std::optional<int> gpus;  // --gpus N
  std::string vendor;       // --gpu-vendor VENDOR ("" if not given)
  bool detect = true;       // false with --no-gpu-detect
};

// Whether DetectGpus is worth running: not with --no-gpu-detect, nor when the
// flags already say everything (--gpus 0, or both --gpus and --gpu-vendor).
bool ShouldDetectGpus(const GpuFlags& flags);

// Combines what was detected (nullopt: detection did not run) with the flags,
// which win:
//   --gpus 0                  no GPU, whatever was detected or declared.
//   --gpus N --gpu-vendor V   N GPUs of V (models kept only if V was detected).
//   --gpus N                  N GPUs of the detected vendor; an error if none was detected.
//   --gpu-vendor V            the detected count and models if V was detected;
//                             otherwise an error (say how many with --gpus).
//   neither                   what was detected.
// VENDOR must be [a-z0-9_.-]+ (it becomes the value of the gpu= label). Pure.
absl::StatusOr<GpuInventory> ResolveGpus(const std::optional<GpuInventory>& detected,
                                         const GpuFlags& flags);

// "8 x mthreads (MTT S4000)", or "none", for logs.
std::string DescribeGpus(const GpuInventory& inv);

}  // namespace musafarm::agent
