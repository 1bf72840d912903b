#include "coordinator/pg_connection.h"

#include <atomic>
#include <cstdlib>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace musafarm::coordinator::pg {
namespace {

// Binary-format values are big-endian.
uint64_t LoadBigEndian(const char* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

// The server's NOTICEs ("relation already exists, skipping") would go to
// stderr by default; they say nothing an operator needs.
void IgnoreNotice(void*, const char*) {}

// The fence (SetFence; the function is in the PostgreSQL schema, version 2).
constexpr Query kFence{"pg_fence", "SELECT musafarm_fence($1)"};

std::atomic<void (*)(const absl::Status&)> g_deposed_handler{nullptr};

absl::Status ConnError(PGconn* c, absl::string_view what) {
  std::string msg(absl::StripTrailingAsciiWhitespace(c != nullptr ? PQerrorMessage(c) : ""));
  return absl::UnavailableError(absl::StrCat("store: ", what, ": ", msg));
}

}  // namespace

Params& Params::Text(absl::string_view v) {
  values_.emplace_back(v);
  null_.push_back(false);
  lengths_.push_back(0);  // ignored for text
  formats_.push_back(0);
  return *this;
}

Params& Params::Int(int64_t v) { return Text(absl::StrCat(v)); }

Params& Params::Bytes(absl::string_view v) {
  values_.emplace_back(v);
  null_.push_back(false);
  lengths_.push_back(static_cast<int>(v.size()));
  formats_.push_back(1);
  return *this;
}

Params& Params::Null() {
  values_.emplace_back();
  null_.push_back(true);
  lengths_.push_back(0);
  formats_.push_back(0);
  return *this;
}

const char* const* Params::values() const {
  pointers_.clear();
  for (size_t i = 0; i < values_.size(); ++i) {
    pointers_.push_back(null_[i] ? nullptr : values_[i].c_str());
  }
  return pointers_.data();
}

int64_t Result::Int(int row, int col) const {
  if (IsNull(row, col)) return 0;
  const int n = PQgetlength(r_.get(), row, col);
  const char* p = PQgetvalue(r_.get(), row, col);
  switch (n) {
    case 1:
      return static_cast<unsigned char>(p[0]);  // boolean
    case 2:
      return static_cast<int16_t>(LoadBigEndian(p, 2));
    case 4:
      return static_cast<int32_t>(LoadBigEndian(p, 4));
    default:
      return static_cast<int64_t>(LoadBigEndian(p, 8));
  }
}

int64_t Result::affected() const {
  int64_t n = 0;
  (void)absl::SimpleAtoi(PQcmdTuples(r_.get()), &n);  // "" for statements that change no rows
  return n;
}

void Batch::Add(const Query& q, Params p, std::string what) {
  items_.push_back(Item{&q, std::move(p), std::move(what)});
}

absl::Status ResultError(const PGresult* r, absl::string_view what) {
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  const char* detail = PQresultErrorField(r, PG_DIAG_MESSAGE_DETAIL);
  std::string msg = absl::StrCat("store: ", what, ": ",
                                 primary != nullptr ? primary : PQresultErrorMessage(r));
  if (detail != nullptr) absl::StrAppend(&msg, " (", detail, ")");
  const absl::string_view code = state != nullptr ? state : "";
  if (code == "MF001") {  // musafarm_fence: deposed
    absl::Status deposed = absl::FailedPreconditionError(msg);
    if (auto* handler = g_deposed_handler.load(std::memory_order_acquire)) handler(deposed);
    return deposed;
  }
  if (code == "23505") return absl::AlreadyExistsError(msg);  // unique_violation
  if (code == "P0002") return absl::NotFoundError(msg);       // musafarm_require_row
  if (absl::StartsWith(code, "23")) return absl::FailedPreconditionError(msg);  // integrity
  if (code == "53100") return absl::ResourceExhaustedError(msg);                // disk_full
  // No SQLSTATE: libpq's own error, in practice a connection that broke.
  if (state == nullptr || absl::StartsWith(code, "08") || absl::StartsWith(code, "57P")) {
    return absl::UnavailableError(msg);  // connection lost, server shutting down
  }
  return absl::InternalError(msg);  // e.g. class 42: our SQL is wrong
}

void SetDeposedHandler(void (*handler)(const absl::Status& why)) {
  g_deposed_handler.store(handler, std::memory_order_release);
}

std::string MaskPassword(const std::string& url) {
  std::string out = url;
  // postgres://user:PASSWORD@host
  const size_t scheme = out.find("://");
  if (scheme != std::string::npos) {
    const size_t at = out.find('@', scheme + 3);
    const size_t colon = out.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at) {
      out.replace(colon + 1, at - colon - 1, "xxx");
    }
  }
  // ...?password=PASSWORD&...
  const size_t pw = out.find("password=");
  if (pw != std::string::npos) {
    const size_t start = pw + 9;
    size_t end = out.find_first_of("& ", start);
    if (end == std::string::npos) end = out.size();
    out.replace(start, end - start, "xxx");
  }
  return out;
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(const std::string& url) {
  return Open(url, {});
}

absl::StatusOr<std::unique_ptr<Connection>> Connection::Open(
    const std::string& url, const std::vector<std::pair<std::string, std::string>>& keywords) {
  const std::string where = MaskPassword(url);
  // dbname is expanded as the URL; the keywords after it override its own.
  std::vector<const char*> keys = {"dbname"};
  std::vector<const char*> values = {url.c_str()};
  for (const auto& kv : keywords) {
    keys.push_back(kv.first.c_str());
    values.push_back(kv.second.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  ConnPtr conn(PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1));
  if (conn == nullptr) return absl::ResourceExhaustedError("store: libpq could not allocate");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return ConnError(conn.get(), absl::StrCat("connect to \"", where, "\""));
  }
  PQsetNoticeProcessor(conn.get(), IgnoreNotice, nullptr);
  return std::unique_ptr<Connection>(new Connection(std::move(conn), where));
}

absl::Status Connection::EnsureConnected() {
  if (PQstatus(conn_.get()) == CONNECTION_OK) return absl::OkStatus();
  if (in_transaction_) return ConnError(conn_.get(), "connection lost inside a transaction");
  PQreset(conn_.get());
  prepared_.clear();  // prepared statements live in the server session
  if (PQstatus(conn_.get()) != CONNECTION_OK) {
    return ConnError(conn_.get(), absl::StrCat("reconnect to \"", where_, "\""));
  }
  if (fence_ != 0) return SetFence(fence_);  // session settings went with the session
  return absl::OkStatus();
}

absl::Status Connection::SetFence(int64_t epoch) {
  fence_ = epoch;
  if (epoch == 0) return absl::OkStatus();
  return Exec(absl::StrCat("SET idle_in_transaction_session_timeout = '",
                           kIdleInTransactionTimeout, "'"),
              "set idle_in_transaction_session_timeout");
}

absl::Status Connection::RunFence() {
  if (fence_ == 0) return absl::OkStatus();
  return RunPrepared(kFence, Params().Int(fence_), "leader fence").status();
}

bool Connection::NeedsFencedTransaction(absl::string_view sql) const {
  if (fence_ == 0 || in_transaction_) return false;
  sql = absl::StripLeadingAsciiWhitespace(sql);
  return !absl::StartsWithIgnoreCase(sql, "SELECT");
}

template <typename Statement>
absl::StatusOr<Result> Connection::InFencedTransaction(absl::string_view what, Statement&& run) {
  std::optional<Result> out;
  MF_RETURN_IF_ERROR(InTransaction(what, [&]() -> absl::Status {
    absl::StatusOr<Result> r = run();
    if (!r.ok()) return r.status();
    out.emplace(*std::move(r));
    return absl::OkStatus();
  }));
  return *std::move(out);
}

absl::Status Connection::EnsurePrepared(const Query& q) {
  if (prepared_.count(q.name) != 0) return absl::OkStatus();
  ResultPtr r(PQprepare(conn_.get(), q.name, q.sql, 0, nullptr));
  if (r == nullptr) return ConnError(conn_.get(), absl::StrCat("prepare ", q.name));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    return ResultError(r.get(), absl::StrCat("prepare ", q.name, " \"", q.sql, "\""));
  }
  prepared_.insert(q.name);
  return absl::OkStatus();
}

absl::Status Connection::Exec(const std::string& sql, absl::string_view what) {
  MF_RETURN_IF_ERROR(EnsureConnected());
  ResultPtr r(PQexec(conn_.get(), sql.c_str()));
  if (r == nullptr) return ConnError(conn_.get(), what);
  const ExecStatusType st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return ResultError(r.get(), what);
  return absl::OkStatus();
}

absl::StatusOr<Result> Connection::Run(const Query& q, const Params& p, absl::string_view what) {
  if (NeedsFencedTransaction(q.sql)) {
    return InFencedTransaction(what, [&] { return RunPrepared(q, p, what); });
  }
  return RunPrepared(q, p, what);
}

absl::StatusOr<Result> Connection::RunOnce(const std::string& sql, const Params& p,
                                           absl::string_view what) {
  if (NeedsFencedTransaction(sql)) {
    return InFencedTransaction(what, [&] { return RunUnprepared(sql, p, what); });
  }
  return RunUnprepared(sql, p, what);
}

absl::StatusOr<Result> Connection::RunPrepared(const Query& q, const Params& p,
                                               absl::string_view what) {
  MF_RETURN_IF_ERROR(EnsureConnected());
  MF_RETURN_IF_ERROR(EnsurePrepared(q));
  ResultPtr r(PQexecPrepared(conn_.get(), q.name, p.size(), p.values(), p.lengths(), p.formats(),
                             /*resultFormat=*/1));
  if (r == nullptr) return ConnError(conn_.get(), what);
  const ExecStatusType st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return ResultError(r.get(), what);
  return Result(std::move(r));
}

absl::StatusOr<Result> Connection::RunUnprepared(const std::string& sql, const Params& p,
                                                 absl::string_view what) {
  MF_RETURN_IF_ERROR(EnsureConnected());
  ResultPtr r(PQexecParams(conn_.get(), sql.c_str(), p.size(), nullptr, p.values(), p.lengths(),
                           p.formats(), /*resultFormat=*/1));
  if (r == nullptr) return ConnError(conn_.get(), what);
  const ExecStatusType st = PQresultStatus(r.get());
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) return ResultError(r.get(), what);
  return Result(std::move(r));
}

absl::Status Connection::ReadChunk(const std::vector<std::string>& whats) {
  PGconn* c = conn_.get();
  absl::Status first;
  for (const std::string& what : whats) {
    ResultPtr r(PQgetResult(c));
    if (r == nullptr) return ConnError(c, what);
    // Statements after a failed one come back PGRES_PIPELINE_ABORTED: skipped.
    if (PQresultStatus(r.get()) == PGRES_FATAL_ERROR && first.ok()) {
      first = ResultError(r.get(), what);
    }
    while (ResultPtr end{PQgetResult(c)}) {
    }  // the NULL that ends this statement's results
  }
  ResultPtr sync(PQgetResult(c));
  if (sync == nullptr || PQresultStatus(sync.get()) != PGRES_PIPELINE_SYNC) {
    return first.ok() ? ConnError(c, "pipeline sync") : first;
  }
  return first;
}

absl::Status Connection::Commit(const Batch& batch) {
  if (batch.empty()) return absl::OkStatus();
  MF_RETURN_IF_ERROR(EnsureConnected());
  for (const Batch::Item& item : batch.items_) MF_RETURN_IF_ERROR(EnsurePrepared(*item.query));
  const Params fence_params = Params().Int(fence_);
  if (fence_ != 0) MF_RETURN_IF_ERROR(EnsurePrepared(kFence));
  PGconn* c = conn_.get();
  if (PQenterPipelineMode(c) != 1) return ConnError(c, "enter pipeline mode");
  std::vector<std::string> whats;
  absl::Status status;
  auto send_plain = [&](const char* sql) {
    if (PQsendQueryParams(c, sql, 0, nullptr, nullptr, nullptr, nullptr, 1) != 1) {
      status = ConnError(c, sql);
    }
    whats.emplace_back(sql);
  };
  auto sync = [&] {
    if (PQpipelineSync(c) != 1) {
      status = ConnError(c, "pipeline sync");
      return;
    }
    status = ReadChunk(whats);
    whats.clear();
  };
  send_plain("BEGIN");
  // The fence first: a deposed coordinator's batch fails before any row.
  if (fence_ != 0) {
    if (PQsendQueryPrepared(c, kFence.name, 1, fence_params.values(), fence_params.lengths(),
                            fence_params.formats(), 1) != 1) {
      status = ConnError(c, "leader fence");
    }
    whats.emplace_back("leader fence");
  }
  for (const Batch::Item& item : batch.items_) {
    if (!status.ok()) break;
    const Params& p = item.params;
    if (PQsendQueryPrepared(c, item.query->name, p.size(), p.values(), p.lengths(), p.formats(),
                            1) != 1) {
      status = ConnError(c, item.what);
      break;
    }
    whats.push_back(item.what);
    if (whats.size() >= kPipelineChunk) sync();
  }
  if (status.ok()) {
    send_plain("COMMIT");
    if (status.ok()) sync();
  }
  (void)PQexitPipelineMode(c);  // fails only with results left unread, which we never leave
  if (!status.ok()) RollBack();
  return status;
}

void Connection::RollBack() {
  const PGTransactionStatusType t = PQtransactionStatus(conn_.get());
  if (t != PQTRANS_INTRANS && t != PQTRANS_INERROR) return;  // already ended
  ResultPtr r(PQexec(conn_.get(), "ROLLBACK"));
  // A failed ROLLBACK means the connection is gone: the server rolls back.
  (void)r;
}

}  // namespace musafarm::coordinator::pg
