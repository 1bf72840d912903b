#pragma once

// Task logs and artifacts in PostgreSQL (issue 20), so that a standby
// coordinator on another host has every byte the active one acknowledged.
//
// Table log_chunks (schema version 2, postgres_store.cc): one row per piece of
// a byte stream, keyed (task_id, attempt_id, artifact, off); artifact is ""
// for the attempt's log, else the artifact's name. A stream's rows are
// contiguous from offset 0, and its size is the end of its last row.
//
// Appends wait in memory until Flush(), which the core calls once per group of
// agent messages before it acknowledges any of their bytes: everything pending
// goes out as one pipelined transaction (pg::Connection::Commit, so it is
// fenced like every other write), one row per stream and kMaxChunkBytes. A
// busy farm therefore pays one round trip per group, not per line or chunk.
// Reads, Close and retention flush first, so they see every accepted byte.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "coordinator/log_store.h"
#include "coordinator/pg_connection.h"

namespace musafarm::coordinator {

class PostgresLogStore final : public LogStore {
 public:
  // At most this many bytes in one row. Rows are written per stream and
  // flush, so most hold what one group brought (a few lines to a few KiB);
  // the cap keeps a read of a short range from fetching a large row, and a
  // row far below the 1 GiB bytea limit and libpq's buffers. PostgreSQL
  // compresses and moves large values out of line itself (TOAST), so bigger
  // rows would not store more compactly.
  static constexpr uint64_t kMaxChunkBytes = 256 << 10;
  // Pending bytes past which Append flushes at once, bounding memory when a
  // group brings much output.
  static constexpr uint64_t kMaxPendingBytes = 8 << 20;

  explicit PostgresLogStore(std::unique_ptr<pg::Connection> conn) : conn_(std::move(conn)) {}
  // Flushes what is pending (a clean shutdown).
  ~PostgresLogStore() override;

  absl::StatusOr<uint64_t> Append(const std::string& task_id, uint64_t attempt_id, uint64_t offset,
                                  absl::string_view data) override;
  absl::Status Flush() override;
  uint64_t Size(const std::string& task_id, uint64_t attempt_id) override;
  absl::StatusOr<std::string> Read(const std::string& task_id, uint64_t attempt_id, uint64_t offset,
                                   uint64_t limit) override;
  void Close(const std::string& task_id, uint64_t attempt_id) override;
  absl::StatusOr<uint64_t> AppendArtifact(const std::string& task_id, uint64_t attempt_id,
                                          const std::string& name, uint64_t offset,
                                          absl::string_view data) override;
  uint64_t ArtifactSize(const std::string& task_id, uint64_t attempt_id,
                        const std::string& name) override;
  absl::StatusOr<std::string> ReadArtifact(const std::string& task_id, uint64_t attempt_id,
                                           const std::string& name, uint64_t offset,
                                           uint64_t limit) override;
  void CloseAttempt(const std::string& task_id, uint64_t attempt_id) override;
  uint64_t TaskBytes(const std::string& task_id) override;
  absl::Status RemoveTask(const std::string& task_id) override;

 private:
  // (task id, attempt, artifact name or "" for the log).
  using Key = std::tuple<std::string, uint64_t, std::string>;
  struct Stream {
    uint64_t stored = 0;   // bytes in the table
    std::string pending;   // accepted bytes from `stored` on, not yet written
  };

  absl::StatusOr<Stream*> Open(const Key& key);
  absl::StatusOr<uint64_t> StoredSize(const Key& key);
  absl::StatusOr<uint64_t> AppendTo(const Key& key, uint64_t offset, absl::string_view data);
  uint64_t SizeOf(const Key& key);
  absl::StatusOr<std::string> ReadFrom(const Key& key, uint64_t offset, uint64_t limit);
  void CloseStream(const Key& key);

  std::unique_ptr<pg::Connection> conn_;
  // Streams being written: bounded by the running attempts.
  std::map<Key, Stream> open_;
  uint64_t pending_bytes_ = 0;
};

// Connects to `url`, migrates the schema, and returns the log store there.
// With `fence_epoch` (the active coordinator's leader epoch, leadership.h)
// every write is fenced by it, as the Store's are; 0: not fenced.
absl::StatusOr<std::unique_ptr<LogStore>> OpenPostgresLogStore(const std::string& url,
                                                               int64_t fence_epoch = 0);

}  // namespace musafarm::coordinator
