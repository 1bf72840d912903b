#pragma once

// `musafarm-coordinator migrate --data-dir DIR --to postgresql://...` (issue
// 20): moves a farm from SQLite to PostgreSQL. Everything the data dir holds
// of the farm goes: every row of the store (jobs, tasks, transitions, agents,
// sealed secrets, tokens, certificates, the audit log, schedules, webhooks,
// counters, the content store's index and pins), every task log and artifact
// byte for byte, and every blob of the content store (checked against its
// digest on the way; a corrupt one is left out and named).
//
// Safe to re-run: it all goes in ONE transaction, so a crash or an error
// midway leaves the database as it was, and the next run starts again. The
// target must be empty (a new database; only the schema a coordinator or an
// earlier attempt created is allowed): anything else is refused, naming a
// table that holds rows, so two farms never mix. The data dir's lock is held
// throughout: a coordinator running on it is refused (stop it first), and one
// cannot start on it midway.
//
// Sealed values (job and schedule secrets, webhook URLs) are copied as they
// are: the coordinators on PostgreSQL must use the same secrets key, which
// the summary names. The data dir's files are left untouched.

#include <ostream>
#include <string>

namespace musafarm::coordinator {

struct MigrateOptions {
  std::string data_dir = "musafarm-data";
  std::string to;                 // postgres:// or postgresql:// URL
  std::string secrets_key_file;   // as the coordinator's --secrets-key-file
};

// Returns the exit code: 0 done (summary on `out`); 2 refused or bad options
// (no store in the data dir, a coordinator running on it, a database that is
// not empty or not PostgreSQL); 1 a failure midway (nothing was written).
int RunMigrate(const MigrateOptions& options, std::ostream& out, std::ostream& err);

}  // namespace musafarm::coordinator
