#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "common/logging.h"

// Shared by the files that define Agent (agent.cc, agent_recovery.cc,
// agent_shutdown.cc); not part of the agent's interface.
namespace musafarm::agent::internal {

// The "agent" logger.
std::shared_ptr<spdlog::logger> Log();
// "7/dev/test" attempt 12 -> "7_dev_test-12": a file name.
std::string AttemptFileName(const std::string& task, uint64_t attempt);

}  // namespace musafarm::agent::internal
