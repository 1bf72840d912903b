#pragma once

#include <cstdint>

#include "absl/status/statusor.h"

namespace musafarm {

// Raises this process's soft RLIMIT_NOFILE to its hard limit and returns the
// soft limit now in force. A coordinator holds a descriptor per agent
// connection, watcher and open task log: at a shell's usual soft limit of
// 1,024 the thousandth agent would be refused, while the hard limit (systemd's
// LimitNOFILE=, `ulimit -Hn`) is what the operator meant to allow.
absl::StatusOr<uint64_t> RaiseOpenFileLimit();

}  // namespace musafarm
