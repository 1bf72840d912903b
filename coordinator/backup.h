#pragma once

// `musafarm-coordinator backup DEST` and `restore SRC`: a copy of a data
// directory that a coordinator can start from, taken while it runs.
//
// What a backup holds (all files 0600, directories 0700):
//   musafarm.db    SQLite's online backup (sqlite3_backup_*) of the store: one
//                  read snapshot, so jobs, tasks and tokens agree with each other
//   logs/...       every task's log and artifact files, copied after the snapshot
//   secrets.key    the key sealing job secrets (without it they cannot be opened)
//   pki/...        the farm CA and the coordinator's certificate, when present
//   MANIFEST       written last: "musafarm-backup 1", then "SHA256 SIZE PATH" per
//                  file; a directory without it is an unfinished backup
//
// Why logs after the database: the core accepts an attempt's result only once
// every byte of its log and artifacts is in the files (Core::OnResult), and
// files only grow. So every attempt finished in the snapshot finds its whole
// log in the copy; a running attempt's log may hold more than the snapshot
// knows, which the restored coordinator treats like any restart (the agent
// re-attaches and resends from the stored size, or the attempt is re-queued).
// The lock file and SQLite's -wal/-shm are never copied.

#include <ostream>
#include <string>

#include "absl/status/status.h"

namespace musafarm::coordinator {

inline constexpr char kBackupManifest[] = "MANIFEST";
inline constexpr char kBackupMagic[] = "musafarm-backup 1";

// Copies `data_dir` into `dest`, which must not exist or be empty. Safe while a
// coordinator runs on `data_dir`. Says what it copied on `out`.
// InvalidArgument: bad directories (exit 2); other errors: I/O (exit 1).
absl::Status BackupDataDir(const std::string& data_dir, const std::string& dest, std::ostream& out);

// Checks the backup `src` against its MANIFEST and copies it into `data_dir`,
// which must hold no database (a coordinator must not be running there).
// InvalidArgument: not a backup, or a data dir in use (exit 2); DataLoss: a
// file differs from the manifest (exit 1, nothing is left half-restored: the
// check runs before anything is written).
absl::Status RestoreDataDir(const std::string& src, const std::string& data_dir, std::ostream& out);

// What `backup` (or `restore`) says instead of running for a coordinator on
// PostgreSQL (`masked_url`, its password masked): the database is backed up
// with PostgreSQL's own tools, which operators of it already run, and what
// is not in the database (the secrets key, pki) is named to keep beside it.
std::string PostgresBackupAdvice(bool backup, const std::string& masked_url,
                                 const std::string& data_dir);

}  // namespace musafarm::coordinator
