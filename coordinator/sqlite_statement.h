#pragma once

// The small layer over SQLite's C API that every SQLite-backed store shares
// (sqlite_store.cc, sqlite_job_archive.cc): errors as absl::Status, prepared
// statements that are always reset, and one-row queries.

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace musafarm::coordinator::sql {

// Maps an SQLite result to a Status whose message starts with "store: <what>: ".
// Call it right after the failing call: sqlite3_errmsg() describes the latest one.
absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what);

struct DbCloser {
  // close_v2 rather than close: it cannot fail with SQLITE_BUSY, so a statement
  // that somehow outlived us would not leak the connection.
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// One prepared statement. Bind*() does not copy (SQLITE_STATIC): the bound data
// must stay alive until Reset(). The first bind failure is kept and returned by
// Step(), so callers check one result per execution.
class Statement {
 public:
  Statement() = default;

  // `persistent` hints SQLite that the statement is cached and reused.
  static absl::StatusOr<Statement> Prepare(sqlite3* db, absl::string_view sql, bool persistent) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()),
                                persistent ? SQLITE_PREPARE_PERSISTENT : 0, &raw, nullptr);
    Statement s;
    s.stmt_.reset(raw);
    if (rc != SQLITE_OK) return SqliteError(db, rc, absl::StrCat("prepare \"", sql, "\""));
    return s;
  }

  void BindInt64(int index, int64_t value) { Keep(sqlite3_bind_int64(stmt_.get(), index, value)); }
  void BindText(int index, absl::string_view value) {
    Keep(sqlite3_bind_text64(stmt_.get(), index, value.data(), value.size(), SQLITE_STATIC,
                             SQLITE_UTF8));
  }
  void BindBlob(int index, absl::string_view value) {
    Keep(sqlite3_bind_blob64(stmt_.get(), index, value.data(), value.size(), SQLITE_STATIC));
  }

  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() {
    if (bind_rc_ != SQLITE_OK) return bind_rc_;
    return sqlite3_step(stmt_.get());
  }

  // Readies the statement for its next use and drops the bindings. Every use
  // ends here (see ResetOnExit): a statement left mid-step would hold its read
  // snapshot open, which keeps WAL checkpoints from completing.
  void Reset() {
    // sqlite3_reset() repeats the error of the last step, which the caller has
    // already reported; the statement is reset either way.
    (void)sqlite3_reset(stmt_.get());
    (void)sqlite3_clear_bindings(stmt_.get());
    bind_rc_ = SQLITE_OK;
  }

  int64_t ColumnInt64(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  // SQLITE_INTEGER, SQLITE_FLOAT, SQLITE_TEXT, SQLITE_BLOB or SQLITE_NULL.
  int ColumnType(int col) const { return sqlite3_column_type(stmt_.get(), col); }
  absl::string_view ColumnText(int col) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_.get(), col));
    // sqlite3_column_bytes() must follow sqlite3_column_text(): the text call may convert.
    int n = sqlite3_column_bytes(stmt_.get(), col);
    return p == nullptr ? absl::string_view() : absl::string_view(p, n);
  }
  absl::string_view ColumnBlob(int col) const {
    const auto* p = static_cast<const char*>(sqlite3_column_blob(stmt_.get(), col));
    int n = sqlite3_column_bytes(stmt_.get(), col);
    return p == nullptr ? absl::string_view() : absl::string_view(p, n);  // NULL: empty blob
  }

  // The Status for `rc`, a failed Step() of this statement.
  absl::Status Error(int rc, absl::string_view what) const {
    return SqliteError(sqlite3_db_handle(stmt_.get()), rc, what);
  }

 private:
  void Keep(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  StmtPtr stmt_;
  int bind_rc_ = SQLITE_OK;
};

class ResetOnExit {
 public:
  explicit ResetOnExit(Statement& s) : s_(s) {}
  ~ResetOnExit() { s_.Reset(); }
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;

 private:
  Statement& s_;
};

// Runs `sql`, which may hold several statements and must return no rows we need.
absl::Status Exec(sqlite3* db, const char* sql, absl::string_view what);

// The first column of the first row of `sql`, as text: for PRAGMAs that answer.
absl::StatusOr<std::string> QueryText(sqlite3* db, absl::string_view sql, absl::string_view what);

// The same, as an integer.
absl::StatusOr<int64_t> QueryInt(sqlite3* db, absl::string_view sql, absl::string_view what);

}  // namespace musafarm::coordinator::sql
