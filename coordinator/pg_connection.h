#pragma once

// The small layer over libpq's C API that the PostgreSQL store shares
// (postgres_store.cc and its archive, schedules and outbox): errors as
// absl::Status, statements prepared once per connection by name, results in
// binary format, and batches that send a whole transaction in one round trip
// (libpq's pipeline mode). libpqxx would do the same with exceptions, which
// this codebase does not use; sqlite_statement.h is the SQLite counterpart.

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm::coordinator::pg {

struct ConnCloser {
  void operator()(PGconn* c) const { PQfinish(c); }
};
using ConnPtr = std::unique_ptr<PGconn, ConnCloser>;

struct ResultClearer {
  void operator()(PGresult* r) const { PQclear(r); }
};
using ResultPtr = std::unique_ptr<PGresult, ResultClearer>;

// A statement prepared on first use under `name` (unique per connection).
// Parameter types are inferred by the server from the SQL.
struct Query {
  const char* name;
  const char* sql;
};

// The parameters of one execution. Text and integers go as text; bytes go in
// binary format, so a bytea needs no escaping. Values are copied.
class Params {
 public:
  Params& Text(absl::string_view v);
  Params& Int(int64_t v);
  Params& Bool(bool v) { return Text(v ? "true" : "false"); }
  Params& Bytes(absl::string_view v);
  Params& Null();

  int size() const { return static_cast<int>(values_.size()); }
  // Arrays for PQexec*Params, valid while this object is alive and unchanged.
  const char* const* values() const;
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  std::vector<std::string> values_;
  std::vector<bool> null_;
  std::vector<int> lengths_;
  std::vector<int> formats_;
  mutable std::vector<const char*> pointers_;
};

// A query's rows, in binary format.
class Result {
 public:
  explicit Result(ResultPtr r) : r_(std::move(r)) {}
  int rows() const { return PQntuples(r_.get()); }
  bool IsNull(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  // A text or bytea column, as stored.
  absl::string_view Bytes(int row, int col) const {
    return absl::string_view(PQgetvalue(r_.get(), row, col),
                             static_cast<size_t>(PQgetlength(r_.get(), row, col)));
  }
  std::string String(int row, int col) const { return std::string(Bytes(row, col)); }
  // A smallint, integer, bigint or boolean column (NULL reads as 0).
  int64_t Int(int row, int col) const;
  // Rows an INSERT, UPDATE or DELETE changed.
  int64_t affected() const;

 private:
  ResultPtr r_;
};

// Statements sent together, in order, in one transaction (Connection::Commit).
class Batch {
 public:
  // `what` names the statement in the error should it fail.
  void Add(const Query& q, Params p, std::string what);
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }

 private:
  friend class Connection;
  struct Item {
    const Query* query;
    Params params;
    std::string what;
  };
  std::vector<Item> items_;
};

// The Status for a failed result: "store: <what>: <server message>", with a
// code from the SQLSTATE (integrity violations FAILED_PRECONDITION, unique
// violations ALREADY_EXISTS, disk full RESOURCE_EXHAUSTED, a lost connection
// UNAVAILABLE, musafarm_require_row's NOT_FOUND).
absl::Status ResultError(const PGresult* r, absl::string_view what);

// Called with the error, on the failing call's thread, whenever a fenced
// transaction finds that its epoch is no longer the leader's (SetFence), from
// any connection and any writer. The coordinator stops there at once (issue
// 20): a deposed coordinator must not go on acting on state it can no longer
// change. Null (the default): the error is only returned.
void SetDeposedHandler(void (*handler)(const absl::Status& why));

// One connection. Not thread-safe: each Store has its own.
class Connection {
 public:
  // Connects to `url` (a libpq URI, postgres://... or postgresql://...).
  // Errors name `url` without its password.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& url);
  // The same, with libpq connection keywords that override the URL's
  // (keepalives, options, ...).
  static absl::StatusOr<std::unique_ptr<Connection>> Open(
      const std::string& url, const std::vector<std::pair<std::string, std::string>>& keywords);

  // The URL with any password masked, for messages.
  const std::string& where() const { return where_; }
  PGconn* raw() { return conn_.get(); }

  // Fences every write transaction on this connection with leader epoch
  // `epoch` (issue 20; coordinator/leadership.h): Commit and InTransaction
  // run musafarm_fence(epoch) right after BEGIN, and a Run or RunOnce of
  // anything but a SELECT outside a transaction becomes such a transaction of
  // its own. The fence share-locks the leadership row while it still holds
  // `epoch`. A successor bumps the epoch with an UPDATE of that row, which
  // waits for every transaction holding the share lock; a fence that comes
  // after the bump began waits for it to commit and then finds the row
  // changed. So a transaction of a deposed coordinator either committed
  // before the successor's bump (the successor then reads it when it
  // recovers) or fails with FAILED_PRECONDITION "deposed: epoch N is no
  // longer the leader's (now M)" and writes nothing. Reads are not fenced:
  // what a deposed coordinator reads changes nothing.
  // Also bounds how long a transaction may sit idle on this session
  // (idle_in_transaction_session_timeout), so a coordinator frozen halfway
  // through InTransaction cannot hold the share lock, and with it the
  // successor's bump, for longer than kIdleInTransactionTimeout.
  // 0 (the default): no fence, for host commands and tests.
  absl::Status SetFence(int64_t epoch);
  int64_t fence() const { return fence_; }
  static constexpr const char* kIdleInTransactionTimeout = "10s";

  // Runs `sql` (several statements allowed, no parameters, no rows needed).
  // Not fenced: BEGIN/COMMIT, session settings and schema migrations.
  absl::Status Exec(const std::string& sql, absl::string_view what);
  // Runs the prepared statement `q` with `p` (fenced when it writes, above).
  absl::StatusOr<Result> Run(const Query& q, const Params& p, absl::string_view what);
  // Runs `sql` unprepared (SQL built per call) with `p` (fenced likewise).
  absl::StatusOr<Result> RunOnce(const std::string& sql, const Params& p, absl::string_view what);

  // Runs the batch's statements in one transaction, pipelined: BEGIN, every
  // statement, COMMIT and one sync go out before any answer is read, so a
  // batch costs one round trip (per kPipelineChunk statements). When one
  // fails, the rest are skipped, the transaction is rolled back and its error
  // returned.
  absl::Status Commit(const Batch& batch);

  // BEGIN, `body`, COMMIT; ROLLBACK when either fails. For the rare calls
  // that read inside their transaction.
  template <typename Body>
  absl::Status InTransaction(absl::string_view what, Body&& body) {
    if (absl::Status s = Exec("BEGIN", what); !s.ok()) return s;
    in_transaction_ = true;
    absl::Status status = RunFence();
    if (status.ok()) status = body();
    if (status.ok()) status = Exec("COMMIT", what);
    in_transaction_ = false;
    if (!status.ok()) RollBack();
    return status;
  }

  // Statements per pipeline sync: bounds what the server writes back before
  // we read, so neither side blocks on a full socket buffer.
  static constexpr size_t kPipelineChunk = 256;

 private:
  Connection(ConnPtr conn, std::string where) : conn_(std::move(conn)), where_(std::move(where)) {}
  // Reconnects when the server closed the connection (a restart): outside a
  // transaction only, so nothing half-done is lost.
  absl::Status EnsureConnected();
  absl::Status EnsurePrepared(const Query& q);
  // Reads the results of one pipelined chunk; `whats` names them in order.
  absl::Status ReadChunk(const std::vector<std::string>& whats);
  void RollBack();
  // musafarm_fence(fence_) when fenced, inside a transaction.
  absl::Status RunFence();
  // Whether a statement outside a transaction needs one of its own to be
  // fenced: on a fenced connection, anything but a SELECT.
  bool NeedsFencedTransaction(absl::string_view sql) const;
  absl::StatusOr<Result> RunPrepared(const Query& q, const Params& p, absl::string_view what);
  absl::StatusOr<Result> RunUnprepared(const std::string& sql, const Params& p,
                                       absl::string_view what);
  // Runs `run` in a fenced transaction of its own.
  template <typename Statement>
  absl::StatusOr<Result> InFencedTransaction(absl::string_view what, Statement&& run);

  ConnPtr conn_;
  const std::string where_;
  std::set<std::string> prepared_;
  bool in_transaction_ = false;  // inside InTransaction: never reconnect halfway
  int64_t fence_ = 0;            // SetFence; 0: none
};

// `url` with the password (user:PASSWORD@ or password=...) replaced by "xxx".
std::string MaskPassword(const std::string& url);

}  // namespace musafarm::coordinator::pg
