#include "coordinator/postgres_log_store.h"

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/postgres_store.h"

namespace musafarm::coordinator {
namespace {

using pg::Params;
using pg::Query;
using pg::Result;

constexpr Query kInsertChunk{
    "logs_insert_chunk",
    "INSERT INTO log_chunks(task_id, attempt_id, artifact, off, bytes) VALUES($1, $2, $3, $4, $5)"};
// The end of the last row (the primary key's index, read backwards).
constexpr Query kStreamSize{"logs_stream_size",
                            "SELECT off + length(bytes) FROM log_chunks WHERE task_id = $1 AND "
                            "attempt_id = $2 AND artifact = $3 ORDER BY off DESC LIMIT 1"};
// The rows overlapping [$4, $5): none starts kMaxChunkBytes ($6) or more
// before the range and overlaps it, so the index bounds the scan.
constexpr Query kReadRange{"logs_read_range",
                           "SELECT off, bytes FROM log_chunks WHERE task_id = $1 AND "
                           "attempt_id = $2 AND artifact = $3 AND off > $4::bigint - $6::bigint AND off < $5 "
                           "ORDER BY off"};
constexpr Query kTaskBytes{"logs_task_bytes",
                           "SELECT coalesce(sum(length(bytes)), 0)::bigint FROM log_chunks "
                           "WHERE task_id = $1"};
constexpr Query kRemoveTask{"logs_remove_task", "DELETE FROM log_chunks WHERE task_id = $1"};

std::string Describe(const std::tuple<std::string, uint64_t, std::string>& key) {
  const std::string& name = std::get<2>(key);
  return absl::StrCat("task ", std::get<0>(key), " attempt ", std::get<1>(key),
                      name.empty() ? " log" : absl::StrCat(" artifact '", name, "'"));
}

Params KeyParams(const std::tuple<std::string, uint64_t, std::string>& key) {
  Params p;
  p.Text(std::get<0>(key)).Int(static_cast<int64_t>(std::get<1>(key))).Text(std::get<2>(key));
  return p;
}

}  // namespace

PostgresLogStore::~PostgresLogStore() {
  if (absl::Status s = Flush(); !s.ok()) {
    GetLogger("log_store")->error("log bytes not stored at shutdown: {}", s.ToString());
  }
}

absl::StatusOr<uint64_t> PostgresLogStore::StoredSize(const Key& key) {
  MF_ASSIGN_OR_RETURN(Result r,
                      conn_->Run(kStreamSize, KeyParams(key), absl::StrCat("size of ", Describe(key))));
  return r.rows() == 0 ? 0 : static_cast<uint64_t>(r.Int(0, 0));
}

absl::StatusOr<PostgresLogStore::Stream*> PostgresLogStore::Open(const Key& key) {
  auto it = open_.find(key);
  if (it != open_.end()) return &it->second;
  MF_ASSIGN_OR_RETURN(uint64_t stored, StoredSize(key));
  Stream& s = open_[key];
  s.stored = stored;
  return &s;
}

absl::StatusOr<uint64_t> PostgresLogStore::AppendTo(const Key& key, uint64_t offset,
                                                   absl::string_view data) {
  MF_ASSIGN_OR_RETURN(Stream * s, Open(key));
  const uint64_t size = s->stored + s->pending.size();
  if (offset > size) {
    return absl::FailedPreconditionError(
        absl::StrCat(Describe(key), ": chunk at ", offset, " leaves a gap after ", size));
  }
  const uint64_t skip = size - offset;  // already accepted: a resend
  if (skip >= data.size()) return size;
  data.remove_prefix(static_cast<size_t>(skip));
  s->pending.append(data.data(), data.size());
  pending_bytes_ += data.size();
  const uint64_t after = s->stored + s->pending.size();
  if (pending_bytes_ >= kMaxPendingBytes) MF_RETURN_IF_ERROR(Flush());
  return after;
}

absl::Status PostgresLogStore::Flush() {
  // Called after every core event: nothing to do costs nothing.
  if (pending_bytes_ == 0) return absl::OkStatus();
  pg::Batch batch;
  for (const auto& [key, s] : open_) {
    for (uint64_t done = 0; done < s.pending.size(); done += kMaxChunkBytes) {
      const absl::string_view piece =
          absl::string_view(s.pending).substr(static_cast<size_t>(done), kMaxChunkBytes);
      Params p = KeyParams(key);
      p.Int(static_cast<int64_t>(s.stored + done)).Bytes(piece);
      batch.Add(kInsertChunk, std::move(p), absl::StrCat("store bytes of ", Describe(key)));
    }
  }
  absl::Status status = conn_->Commit(batch);
  pending_bytes_ = 0;
  if (!status.ok()) {
    // What is stored is unknown now (the commit may have landed before the
    // connection broke): forget every stream, so sizes are read again and
    // agents resend from there.
    open_.clear();
    return status;
  }
  for (auto it = open_.begin(); it != open_.end();) {
    Stream& s = it->second;
    s.stored += s.pending.size();
    s.pending.clear();
    ++it;
  }
  return absl::OkStatus();
}

uint64_t PostgresLogStore::SizeOf(const Key& key) {
  auto it = open_.find(key);
  if (it != open_.end()) return it->second.stored + it->second.pending.size();
  absl::StatusOr<uint64_t> stored = StoredSize(key);
  if (!stored.ok()) {
    // The interface has no error here; 0 makes the agent resend everything,
    // which the store then skips or refuses, never loses.
    GetLogger("log_store")->error("{}", stored.status().ToString());
    return 0;
  }
  return *stored;
}

absl::StatusOr<std::string> PostgresLogStore::ReadFrom(const Key& key, uint64_t offset,
                                                      uint64_t limit) {
  MF_RETURN_IF_ERROR(Flush());
  if (limit == 0) return std::string();
  constexpr uint64_t kMax = std::numeric_limits<int64_t>::max();
  if (offset >= kMax) return std::string();
  const uint64_t end = limit > kMax - offset ? kMax : offset + limit;
  Params p = KeyParams(key);
  p.Int(static_cast<int64_t>(offset)).Int(static_cast<int64_t>(end));
  p.Int(static_cast<int64_t>(kMaxChunkBytes));
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kReadRange, p, absl::StrCat("read ", Describe(key))));
  std::string out;
  for (int i = 0; i < r.rows() && out.size() < end - offset; ++i) {
    const uint64_t at = offset + out.size();
    const uint64_t row_off = static_cast<uint64_t>(r.Int(i, 0));
    absl::string_view bytes = r.Bytes(i, 1);
    if (row_off > at) break;  // a hole; rows are contiguous, so never
    if (row_off + bytes.size() <= at) continue;
    bytes.remove_prefix(static_cast<size_t>(at - row_off));
    out.append(bytes.data(), static_cast<size_t>(std::min<uint64_t>(end - at, bytes.size())));
  }
  return out;
}

void PostgresLogStore::CloseStream(const Key& key) {
  auto it = open_.find(key);
  if (it == open_.end()) return;
  // The interface's Close makes the stream durable; one flush writes every
  // stream's pending bytes, so a group's results cost one round trip.
  if (!it->second.pending.empty()) {
    if (absl::Status s = Flush(); !s.ok()) {
      // Flush forgot every stream; the next Size reads what is stored.
      GetLogger("log_store")->error("closing {}: {}", Describe(key), s.ToString());
      return;
    }
  }
  open_.erase(key);
}

absl::StatusOr<uint64_t> PostgresLogStore::Append(const std::string& task_id, uint64_t attempt_id,
                                                 uint64_t offset, absl::string_view data) {
  return AppendTo(Key{task_id, attempt_id, ""}, offset, data);
}

uint64_t PostgresLogStore::Size(const std::string& task_id, uint64_t attempt_id) {
  return SizeOf(Key{task_id, attempt_id, ""});
}

absl::StatusOr<std::string> PostgresLogStore::Read(const std::string& task_id, uint64_t attempt_id,
                                                  uint64_t offset, uint64_t limit) {
  return ReadFrom(Key{task_id, attempt_id, ""}, offset, limit);
}

void PostgresLogStore::Close(const std::string& task_id, uint64_t attempt_id) {
  CloseStream(Key{task_id, attempt_id, ""});
}

absl::StatusOr<uint64_t> PostgresLogStore::AppendArtifact(const std::string& task_id,
                                                         uint64_t attempt_id,
                                                         const std::string& name, uint64_t offset,
                                                         absl::string_view data) {
  if (!ValidArtifactName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("bad artifact name '", name, "'"));
  }
  return AppendTo(Key{task_id, attempt_id, name}, offset, data);
}

uint64_t PostgresLogStore::ArtifactSize(const std::string& task_id, uint64_t attempt_id,
                                        const std::string& name) {
  if (!ValidArtifactName(name)) return 0;
  return SizeOf(Key{task_id, attempt_id, name});
}

absl::StatusOr<std::string> PostgresLogStore::ReadArtifact(const std::string& task_id,
                                                          uint64_t attempt_id,
                                                          const std::string& name, uint64_t offset,
                                                          uint64_t limit) {
  if (!ValidArtifactName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("bad artifact name '", name, "'"));
  }
  return ReadFrom(Key{task_id, attempt_id, name}, offset, limit);
}

void PostgresLogStore::CloseAttempt(const std::string& task_id, uint64_t attempt_id) {
  // The log and every artifact: the keys (task, attempt, *) sort together.
  for (auto it = open_.lower_bound(Key{task_id, attempt_id, ""});
       it != open_.end() && std::get<0>(it->first) == task_id &&
       std::get<1>(it->first) == attempt_id;) {
    const Key key = (it++)->first;
    CloseStream(key);
  }
}

uint64_t PostgresLogStore::TaskBytes(const std::string& task_id) {
  absl::StatusOr<Result> r = absl::UnknownError("not read");
  if (absl::Status flushed = Flush(); !flushed.ok()) {
    r = flushed;
  } else {
    r = conn_->Run(kTaskBytes, Params().Text(task_id), absl::StrCat("bytes of task ", task_id));
  }
  if (!r.ok()) {
    // No error in the interface: retention counts nothing for the task now
    // and counts again on its next pass.
    GetLogger("log_store")->error("{}", r.status().ToString());
    return 0;
  }
  return static_cast<uint64_t>(r->Int(0, 0));
}

absl::Status PostgresLogStore::RemoveTask(const std::string& task_id) {
  for (auto it = open_.begin(); it != open_.end();) {
    if (std::get<0>(it->first) == task_id) {
      pending_bytes_ -= it->second.pending.size();
      it = open_.erase(it);
    } else {
      ++it;
    }
  }
  pg::Batch batch;
  batch.Add(kRemoveTask, Params().Text(task_id), absl::StrCat("remove logs of task ", task_id));
  return conn_->Commit(batch);
}

absl::StatusOr<std::unique_ptr<LogStore>> OpenPostgresLogStore(const std::string& url,
                                                               int64_t fence_epoch) {
  MF_ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> conn, pg::Connection::Open(url));
  MF_RETURN_IF_ERROR(MigratePostgresSchema(*conn));
  MF_RETURN_IF_ERROR(conn->SetFence(fence_epoch));
  return std::unique_ptr<LogStore>(std::make_unique<PostgresLogStore>(std::move(conn)));
}

}  // namespace musafarm::coordinator
