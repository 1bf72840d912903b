#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm::agent {

// "5G", "512M", "1.5GiB", "100k", "0", "12345": a size in bytes. Suffixes are
// binary (K = 1024) whatever their spelling: K, M, G, T, P, each optionally
// followed by "i", "B" or "iB", case-insensitive. A fraction is allowed with a
// suffix. InvalidArgument for anything else, or for more than 2^63 bytes.
absl::StatusOr<uint64_t> ParseBytes(absl::string_view text);

// Free bytes for an unprivileged user on the file system holding `dir`
// (statvfs f_bavail * f_frsize).
absl::StatusOr<uint64_t> FreeDiskBytes(const std::string& dir);

// Why the agent takes no work with `free` bytes left in `dir` when it wants
// `min_free`: e.g. "low disk: 1.2 GiB free in /var/lib/musafarm-agent, below
// 5 GiB". Empty when there is enough (or min_free is 0: no threshold).
std::string LowDiskReason(uint64_t free, uint64_t min_free, const std::string& dir);

}  // namespace musafarm::agent
