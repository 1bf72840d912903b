#pragma once

// The agent's side of the content store (issue 17): a cache of blobs by
// digest under <work_dir>/cas, shared by every task of the agent, and trees
// materialized from it into a task's directory by hard links. A tree whose
// blobs are all cached costs no network.

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "musafarm/v1/content_service.pb.h"

namespace musafarm::content {

// Where blobs come from: the coordinator's ContentService
// (content_client.h's ChannelBlobSource), or a fake in tests.
class BlobSource {
 public:
  virtual ~BlobSource() = default;
  // The whole blob, checked against its digest.
  virtual absl::StatusOr<std::string> Fetch(const v1::Digest& digest) = 0;
  // The blob into the new file `path` (mode 0600), checked against its digest.
  virtual absl::Status FetchToFile(const v1::Digest& digest, const std::string& path) = 0;
};

struct MaterializeStats {
  int64_t files = 0;
  int64_t blobs_fetched = 0;   // from the source: what the cache lacked
  int64_t bytes_fetched = 0;
};

// Thread-safe: tasks materialize concurrently. Files in the cache and in
// materialized trees are read-only and never written in place (a hard link
// shares its bytes with every tree that holds it), so a build that writes to
// its context cannot change another's.
class LocalCas {
 public:
  // `dir` is created if missing. Past `max_bytes` the least recently used
  // blobs are dropped after each materialization (trees already made keep
  // their links).
  LocalCas(std::string dir, int64_t max_bytes);

  // Makes the tree `root` at `dest` (which must not exist): directories,
  // files (0444, or 0555 when executable) as hard links into the cache, or
  // copies when `dest` is on another file system, and symbolic links.
  // Fetches from `source` only what the cache lacks. Trees are checked as
  // they are read (content/tree.h): a name or link that would leave `dest`
  // is refused.
  absl::StatusOr<MaterializeStats> Materialize(const v1::Digest& root, BlobSource& source,
                                               const std::string& dest);

  // Bytes the cache holds now.
  int64_t CachedBytes();
  // Blobs eviction has dropped so far.
  int64_t evicted() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  // The cached file of `digest` (the executable variant with `executable`),
  // fetched or made first if missing.
  absl::StatusOr<std::string> Ensure(const v1::Digest& digest, bool executable, BlobSource& source,
                                     MaterializeStats* stats);
  std::string PathOf(const std::string& sha256, bool executable) const;
  absl::StatusOr<MaterializeStats> MaterializeLocked(const v1::Digest& root, BlobSource& source,
                                                     const std::string& dest)
      ABSL_SHARED_LOCKS_REQUIRED(mu_);
  void Evict() ABSL_LOCKS_EXCLUDED(mu_);

  const std::string dir_;
  const int64_t max_bytes_;
  // Materializations hold it shared, eviction exclusively: a blob is never
  // dropped between being found in the cache and being linked into a tree.
  absl::Mutex mu_;
  int64_t evicted_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace musafarm::content
