#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace musafarm::coordinator {

// Takes <data_dir>/lock with flock, so that two coordinators never run on one
// store (both would write the same SQLite file and hand out the same ids). The
// kernel drops the lock when the process dies, SIGKILL included, so a restart
// after a crash is never blocked by a stale file. The file holds the holder's
// pid, for the message. Returns the descriptor holding the lock (close it to
// release); FAILED_PRECONDITION naming the holder's pid when it is taken.
// `musafarm-coordinator migrate` takes it too, so neither runs beside the other.
absl::StatusOr<int> LockDataDir(const std::string& dir);

}  // namespace musafarm::coordinator
