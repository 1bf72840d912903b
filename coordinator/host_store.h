#pragma once

// The store of a coordinator's data directory, for commands run on its host
// beside it (`token create`, `join-token create|list`): SQLite's locking lets
// them write while the coordinator runs. The database must already exist, so a
// mistyped --data-dir is an error rather than a new, empty farm.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/store.h"

namespace musafarm::coordinator {

// FAILED_PRECONDITION naming the path when `data_dir` holds no store.
absl::StatusOr<std::unique_ptr<Store>> OpenHostStore(const std::string& data_dir);

}  // namespace musafarm::coordinator
