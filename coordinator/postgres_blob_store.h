#pragma once

// The content store in PostgreSQL (issue 20): blobs and their index in the
// farm's database, so that a standby coordinator on another host serves the
// same inputs.
//
// Tables (schema version 2, postgres_store.cc):
//   blobs(sha256, size, created_us, last_used_us, complete): one row per blob,
//     a partial upload's included (complete = false, last_used_us = its last
//     write, for GC). Only complete rows count as held and towards max_bytes.
//   blob_chunks(sha256, off, bytes): a blob's bytes, contiguous from offset 0,
//     at most kChunkBytes a row; deleted with their blobs row (cascade).
//   blob_pins(job_id, sha256): the roots each job's inputs name.
//
// Chunks in a bytea table rather than large objects: a bytea value cannot pass
// 1 GiB and is read whole into memory, so a blob is split into rows; rows are
// plain table data that ON DELETE CASCADE removes, pg_dump copies with the
// rest, and every write goes through pg::Connection (so the leader's fencing
// covers them). Large objects would need lo_unlink on every path (a crash
// leaks them) and are read through a separate API outside the fencing.
// Uploads and reads stream: one chunk in memory at a time.
//
// Thread-safe: one connection under a mutex; no call holds it across a
// caller's work.

#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "coordinator/blob_store.h"
#include "coordinator/pg_connection.h"

namespace musafarm::coordinator {

struct PostgresBlobStoreOptions {
  std::string url;                          // the farm's database (--store)
  int64_t max_bytes = int64_t{100} << 30;   // --blob-store-bytes
  const Clock* clock = RealClock::Get();
  // The active coordinator's leader epoch (leadership.h): every write is
  // fenced by it, as the Store's are; 0: not fenced.
  int64_t fence_epoch = 0;
};

class PostgresBlobStore final : public BlobStore {
 public:
  // Bytes per blob_chunks row: large enough that a big input is few rows
  // and round trips, small enough that an upload or read holds one in memory.
  static constexpr int64_t kChunkBytes = 1 << 20;

  // Connects and migrates the schema.
  static absl::StatusOr<std::unique_ptr<PostgresBlobStore>> Open(PostgresBlobStoreOptions options);

  int64_t max_bytes() const override { return options_.max_bytes; }
  absl::StatusOr<std::vector<v1::Digest>> FindMissing(
      const std::vector<v1::Digest>& digests) override;
  absl::StatusOr<BlobWriteState> QueryWrite(const v1::Digest& digest) override;
  absl::StatusOr<std::unique_ptr<BlobUpload>> StartWrite(const v1::Digest& digest,
                                                         int64_t offset) override;
  absl::StatusOr<std::unique_ptr<BlobReader>> StartRead(const v1::Digest& digest,
                                                        int64_t offset) override;
  absl::StatusOr<std::string> ReadSmall(const v1::Digest& digest, int64_t max) override;
  absl::Status Pin(const std::string& job_id, const std::vector<v1::Digest>& roots) override;
  absl::Status Unpin(const std::string& job_id) override;
  absl::StatusOr<BlobGcStats> CollectGarbage(absl::Time now, absl::Duration grace) override;

 private:
  class Upload;
  class Reader;

  PostgresBlobStore(PostgresBlobStoreOptions options, std::unique_ptr<pg::Connection> conn)
      : options_(std::move(options)), conn_(std::move(conn)) {}

  // Size of the complete blob `sha256`; -1 when absent.
  absl::StatusOr<int64_t> IndexedSize(const std::string& sha256) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int64_t> TotalBytes() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Bytes held of the partial upload `sha256` (0 when none).
  absl::StatusOr<int64_t> PartialSize(const std::string& sha256) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The chunk of `sha256` that starts at `off`; empty past the end.
  absl::StatusOr<std::string> ChunkAt(const std::string& sha256, int64_t off);
  absl::Status WriteChunk(const std::string& sha256, int64_t off, absl::string_view bytes);
  absl::Status Commit(const v1::Digest& digest);
  void EndUpload(const std::string& sha256);
  absl::Status Delete(const std::string& sha256);
  absl::Status DropCorrupt(const v1::Digest& digest, const std::string& actual_sha256);
  absl::StatusOr<BlobGcStats> DeleteUnreferenced(int64_t cutoff_us, int64_t target_bytes,
                                                 bool only_if_enough);

  const PostgresBlobStoreOptions options_;
  absl::Mutex mu_;
  std::unique_ptr<pg::Connection> conn_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> uploading_ ABSL_GUARDED_BY(mu_);
};

}  // namespace musafarm::coordinator
