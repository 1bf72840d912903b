#include "coordinator/sqlite_statement.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace musafarm::coordinator::sql {

absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what) {
  std::string msg =
      absl::StrCat("store: ", what, ": ", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  // Extended codes keep the primary code in the low byte.
  switch (rc & 0xff) {
    case SQLITE_CONSTRAINT:  // e.g. a task whose job does not exist: the caller's state is off
    case SQLITE_CANTOPEN:    // the environment, not the code, must change
    case SQLITE_NOTADB:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return absl::FailedPreconditionError(msg);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::InternalError(msg);
  }
}


absl::Status Exec(sqlite3* db, const char* sql, absl::string_view what) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, rc, what);
  return absl::OkStatus();
}


absl::StatusOr<std::string> QueryText(sqlite3* db, absl::string_view sql, absl::string_view what) {
  MF_ASSIGN_OR_RETURN(Statement s, Statement::Prepare(db, sql, /*persistent=*/false));
  int rc = s.Step();
  if (rc != SQLITE_ROW) {
    if (rc == SQLITE_DONE) return absl::InternalError(absl::StrCat("store: ", what, ": no result"));
    return s.Error(rc, what);
  }
  return std::string(s.ColumnText(0));
}


absl::StatusOr<int64_t> QueryInt(sqlite3* db, absl::string_view sql, absl::string_view what) {
  MF_ASSIGN_OR_RETURN(Statement s, Statement::Prepare(db, sql, /*persistent=*/false));
  int rc = s.Step();
  if (rc != SQLITE_ROW) {
    if (rc == SQLITE_DONE) return absl::InternalError(absl::StrCat("store: ", what, ": no result"));
    return s.Error(rc, what);
  }
  return s.ColumnInt64(0);
}


}  // namespace musafarm::coordinator::sql
