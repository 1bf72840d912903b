#pragma once

// Every bound the farm puts on what comes in from outside, in one place
// (issue 12, item 3). Each input is checked where it enters: the CLI (flags,
// the pipeline file), the pipeline parser (shared by the CLI and the
// coordinator), the coordinator's user API and its agent-message validation
// (coordinator/agent_messages). docs/security.md ("Limits") lists them.
//
// The bounds are generous for real use and small enough that one hostile
// message cannot make the coordinator's memory, log, database or its replies
// (which must fit a client's receive limit) grow without bound.

#include <cstddef>
#include <cstdint>

namespace musafarm::limits {

// gRPC's receive limits, set on every server and channel. What the
// coordinator receives (a submitted spec of at most 1 MiB with its params and
// secrets; agents' 64 KiB chunks and registers) fits in 4 MiB: a larger
// message is refused by gRPC (RESOURCE_EXHAUSTED) before it is decoded.
inline constexpr int kMaxRequestBytes = 4 << 20;
// What clients receive: a GetLog or GetArtifact page of 4 MiB, a job of
// 10,000 tasks, an assignment. The bounds on names, labels and counts keep
// every reply (e.g. `musafarm agents`) below it.
inline constexpr int kMaxReplyBytes = 16 << 20;

// The pipeline file: the CLI checks its size (stat) before reading it.
inline constexpr size_t kMaxSpecBytes = 1 << 20;
// Tasks one submitted job may expand to (pipeline::kMaxTasks is the same bound).
inline constexpr size_t kMaxTasksPerJob = 10000;
// A secret's value, and the secrets and params one submission may carry.
inline constexpr size_t kMaxSecretBytes = 64 << 10;
inline constexpr size_t kMaxSecretsPerJob = 32;

// Names: agents, stages, jobs, matrix axes and their values, params.
inline constexpr size_t kMaxNameBytes = 128;
// Labels an agent declares or a stage requires.
inline constexpr size_t kMaxLabels = 64;
inline constexpr size_t kMaxLabelBytes = 256;
// Other short strings an agent sends about itself (version, executors, reasons).
inline constexpr size_t kMaxAgentTextBytes = 1024;
// Attempts an agent may say it holds, executors it may list.
inline constexpr size_t kMaxHeldAttempts = 4096;
inline constexpr size_t kMaxAgentExecutors = 32;
// Slots and GPUs an agent may declare.
inline constexpr int kMaxAgentSlots = 4096;
inline constexpr int kMaxAgentGpus = 1024;

// GPUs one stage may ask for: --max-gpus-per-stage's default. That no
// connected agent has that many is a warning ("waits for an agent with N
// GPUs"), not an error; past this bound it is an error at submit.
inline constexpr int kDefaultMaxGpusPerStage = 64;

// A stage's timeout and retries.
inline constexpr int64_t kMaxTimeoutSeconds = 7 * 24 * 3600;  // one week
inline constexpr int kMaxRetries = 100;

// One log or artifact chunk from an agent (agents send 64 KiB).
inline constexpr size_t kMaxChunkBytes = 1 << 20;
// Task log bytes kept per attempt: --max-log-bytes's default. Past it output
// is dropped after one marker line and the task goes on.
inline constexpr uint64_t kDefaultMaxLogBytes = uint64_t{1} << 30;
// Bytes of one artifact the coordinator stores.
inline constexpr uint64_t kMaxArtifactBytes = uint64_t{1} << 30;

}  // namespace musafarm::limits
