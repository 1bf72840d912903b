#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "musafarm/v1/agent_service.pb.h"

namespace musafarm::coordinator {

// Checks a message from an agent against common/limits.h before anything
// else sees it: names and labels (length, count, no control characters),
// slots and GPUs, chunk sizes, the lengths of ids and texts. InvalidArgument
// says which field and why, so the stream can end with it (issue 12: one
// register with a 15 MB name and 100,000 labels was stored and broke
// `musafarm agents`). Cheap: run in the stream's reaction.
absl::Status ValidateAgentMessage(const v1::AgentMessage& msg);

// The coordinator -> agent messages the core sends from more than one place.

// Stop the attempt (user cancel, or it is no longer current).
v1::CoordinatorMessage CancelMessage(const std::string& task_id, uint64_t attempt,
                                     const std::string& reason);

// The attempt's log is stored up to `offset`; with `resend`, send again from
// there; with `result_stored`, the result is durable and the attempt may be forgotten.
v1::CoordinatorMessage AckMessage(const std::string& task_id, uint64_t attempt, uint64_t offset,
                                  bool result_stored, bool resend = false);

// From the agent's next heartbeat on, heartbeat every `interval`.
v1::CoordinatorMessage PaceMessage(absl::Duration interval);

// The images that no agent may prune.
v1::CoordinatorMessage KeepImagesMessage(const std::set<std::string>& images);

}  // namespace musafarm::coordinator
