#pragma once

// The PostgreSQL Store (issue 20), opened with OpenPostgresStore(). The same
// interfaces and semantics as the SQLite store (store.h, job_archive.h,
// schedule_store.h, webhook_outbox.h; both pass store_conformance_test.cc),
// so that the farm's state can live outside one coordinator's disk. Logs and
// artifacts (postgres_log_store.h) and the content store
// (postgres_blob_store.h) live in the same database, in tables of version 3.
//
// Schema (PostgreSQL version 1 = the tables of SQLite versions 1 to 6). The same tables and
// columns as sqlite_store.h describes, with these differences:
//   - seq columns are bigint identities (insertion order);
//   - proto, secret and webhook columns are bytea; schedules.paused is boolean;
//   - api_tokens.user and audit.user are called username ("user" is reserved);
//   - jobs has submitter, stored_bytes and retention_s from the start;
//   - image_outbox has a seq column for its order (SQLite uses the rowid);
//   - audit is append-only through a trigger that refuses UPDATE, DELETE and
//     TRUNCATE (musafarm_audit_append_only);
//   - musafarm_require_row(n, what) raises NO_DATA_FOUND when n is 0: a
//     pipelined statement that must have changed a row fails its transaction.
// Version 2 adds leadership, coordinators and musafarm_fence (leadership.h);
// version 3 log_chunks, blobs, blob_chunks and blob_pins (logs, artifacts and
// the content store).
// The version is the one row of schema_version. Migrations run at open, in one
// transaction under an advisory lock, so coordinators opening the same
// database at once migrate it once.

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "coordinator/store.h"

namespace musafarm::coordinator::pg {
class Connection;
}  // namespace musafarm::coordinator::pg

namespace musafarm::coordinator {

// The schema version this build writes; newer databases are refused.
inline constexpr int kPostgresSchemaVersion = 3;

// Whether `spec` (a --store value) names a PostgreSQL database.
bool IsPostgresUrl(const std::string& spec);

// Brings the database `conn` is connected to up to kPostgresSchemaVersion
// (every store on PostgreSQL calls it at open; all but the first find nothing
// to do). FAILED_PRECONDITION for a database of a newer musafarm.
absl::Status MigratePostgresSchema(pg::Connection& conn);

// Connects to the database at `url` (postgres://... or postgresql://..., as
// libpq reads it), migrates its schema, and returns the Store over it. Job
// and schedule secrets and webhook URLs are sealed with `cipher`. With
// `fence_epoch` (the active coordinator's leader epoch, leadership.h) every
// write the store makes is fenced by it (pg::Connection::SetFence); 0 (host
// commands, tests): not fenced.
absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const std::string& url,
                                                         const SecretCipher& cipher,
                                                         int64_t fence_epoch = 0);

}  // namespace musafarm::coordinator
