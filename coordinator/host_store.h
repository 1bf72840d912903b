#pragma once

// The store of a coordinator, for commands run on its host beside it (`token
// create`, `join-token create|list`): the data directory's SQLite file, whose
// locking lets them write while the coordinator runs, or the PostgreSQL
// database the coordinator's --store names. An SQLite database must already
// exist, so a mistyped --data-dir is an error rather than a new, empty farm.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/store.h"

namespace musafarm::coordinator {

// `store` is the coordinator's --store: empty for SQLite in `data_dir`, else
// a postgres:// or postgresql:// URL (INVALID_ARGUMENT for anything else).
// FAILED_PRECONDITION naming the path when `data_dir` holds no SQLite store.
// The store is for tokens, certificates and the audit log: host commands
// read and write no job or schedule secrets, so on PostgreSQL it holds a
// cipher of a random key (a sealed value would fail to open, never leak).
absl::StatusOr<std::unique_ptr<Store>> OpenHostStore(const std::string& data_dir,
                                                     const std::string& store = "");

}  // namespace musafarm::coordinator
