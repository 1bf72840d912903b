#pragma once

#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "coordinator/blob_store.h"
#include "coordinator/sqlite_statement.h"

namespace musafarm::coordinator {

struct LocalBlobStoreOptions {
  std::string dir;       // blobs/<2 hex>/<sha256> and partial/<sha256> below it
  std::string db_path;   // the coordinator's database, migrated to schema 7 or later
  int64_t max_bytes = int64_t{100} << 30;   // --blob-store-bytes
  const Clock* clock = RealClock::Get();
};

// The coordinator's BlobStore: each blob a file named by its SHA-256, a
// partial upload a file of its own until it is verified and renamed into
// place, and the index (size, created, last used, pins) in the database's
// `blobs` and `blob_pins` tables, on a connection of its own. Thread-safe; file
// I/O is done outside its lock.
class LocalBlobStore final : public BlobStore {
 public:
  // Creates the directories (0700) and opens the index. FAILED_PRECONDITION
  // when the database is older than schema 7 (the Store opens it first and
  // migrates it).
  static absl::StatusOr<std::unique_ptr<LocalBlobStore>> Open(LocalBlobStoreOptions options);

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

  // Where a blob's bytes live (tests corrupt them there).
  std::string BlobPath(const std::string& sha256) const;
  std::string PartialPath(const std::string& sha256) const;

 private:
  class Upload;
  class Reader;

  explicit LocalBlobStore(LocalBlobStoreOptions options, sql::DbPtr db)
      : options_(std::move(options)), db_(std::move(db)) {}

  // Size of the complete blob `sha256` in the index; -1 when absent.
  absl::StatusOr<int64_t> IndexedSize(const std::string& sha256) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int64_t> TotalBytes() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The blobs pinned trees reach (their directories and files).
  absl::StatusOr<std::set<std::string>> Reachable();
  // Deletes the blobs no pinned tree reaches and no upload writes: those
  // last used before `cutoff_us`, then, oldest use first, more while the
  // store holds more than `target_bytes`; with `only_if_enough`, none of
  // those unless that brings it down to `target_bytes` (an upload that would
  // not fit anyway deletes nothing for it).
  absl::StatusOr<BlobGcStats> DeleteUnreferenced(int64_t cutoff_us, int64_t target_bytes,
                                                 bool only_if_enough);
  absl::Status Touch(const std::string& sha256) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Upload: records the verified blob now at BlobPath().
  absl::Status Commit(const v1::Digest& digest);
  void EndUpload(const std::string& sha256);
  // A blob whose bytes no longer match its name: gone from disk and index.
  absl::Status DropCorrupt(const v1::Digest& digest, const std::string& actual_sha256);
  absl::Status Exec(absl::string_view sql, absl::string_view what,
                    const std::function<void(sql::Statement&)>& bind,
                    const std::function<void(sql::Statement&)>& row = nullptr)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const LocalBlobStoreOptions options_;
  absl::Mutex mu_;
  sql::DbPtr db_ ABSL_GUARDED_BY(mu_);
  std::set<std::string> uploading_ ABSL_GUARDED_BY(mu_);
};

}  // namespace musafarm::coordinator
