#pragma once

#include <memory>
#include <string>

#include "spdlog/spdlog.h"

namespace musafarm {

// One named logger per component ("scheduler", "store", "agent_stream", ...),
// all writing to stderr with the same pattern. Thread-safe.
std::shared_ptr<spdlog::logger> GetLogger(const std::string& name);

// Sets the level of every logger, existing and future ("debug", "info", ...).
void SetLogLevel(const std::string& level);

// Broken invariant: log critical and abort. Not for things the world does.
#define MF_CHECK(cond, ...)                                                             \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      ::musafarm::GetLogger("check")->critical("CHECK failed: " #cond " " __VA_ARGS__); \
      ::spdlog::shutdown();                                                             \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)

}  // namespace musafarm
