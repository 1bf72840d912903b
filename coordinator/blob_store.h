#pragma once

// The content store (issue 17): blobs by SHA-256 digest (files, and the
// serialized Directory messages of trees), pinned by the jobs whose inputs
// name their trees, collected when nothing pins them. An interface so that
// "Highly available coordinators" can put it in PostgreSQL; the coordinator's
// is LocalBlobStore (files under the data dir, an SQLite index).
//
// Thread-safe: ContentService calls it from its I/O thread, the core from the
// core loop.

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "content/tree.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// One upload in progress (ContentService.Write). Bytes are kept as they come,
// so an interrupted upload resumes where it stopped.
class BlobUpload {
 public:
  virtual ~BlobUpload() = default;
  // INVALID_ARGUMENT when the data would run past the digest's size.
  virtual absl::Status Append(absl::string_view data) = 0;
  // Once all size_bytes have arrived: checks the SHA-256 and makes the blob
  // readable. A mismatch is INVALID_ARGUMENT naming the digest and what the
  // bytes hash to, and the partial bytes are discarded.
  virtual absl::Status Finish() = 0;
  virtual int64_t committed_size() const = 0;
};

// One read (ContentService.Read), checked against the digest as it goes.
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  // Up to `max` next bytes; empty at the end, once the whole blob has hashed
  // to its name. A blob whose bytes do not is DATA_LOSS naming it, and is
  // deleted from the store (the submitter uploads it again).
  virtual absl::StatusOr<std::string> Next(size_t max) = 0;
};

struct BlobWriteState {
  int64_t committed_size = 0;  // bytes held: a partial upload's, or the whole size
  bool complete = false;
};

struct BlobGcStats {
  int64_t deleted = 0;        // blobs removed
  int64_t freed_bytes = 0;
  int64_t kept = 0;           // blobs left
  int64_t kept_bytes = 0;
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;

  // The store's size limit in bytes (--blob-store-bytes). An upload that
  // would pass it first makes room by deleting unreferenced blobs, oldest
  // use first, whatever their grace; one that still cannot fit is refused
  // naming the limit. No input may be larger.
  virtual int64_t max_bytes() const = 0;

  // Those of `digests` the store does not hold. Those it holds count as used
  // now (garbage collection spares them for its grace period).
  virtual absl::StatusOr<std::vector<v1::Digest>> FindMissing(
      const std::vector<v1::Digest>& digests) = 0;

  virtual absl::StatusOr<BlobWriteState> QueryWrite(const v1::Digest& digest) = 0;

  // Starts or resumes an upload at `offset`: 0 (starting over), or the
  // committed size of a partial upload. OUT_OF_RANGE naming the size to
  // resume at otherwise; ABORTED while another call uploads the same blob;
  // ALREADY_EXISTS when the blob is complete; RESOURCE_EXHAUSTED when it would
  // take the store past max_bytes().
  virtual absl::StatusOr<std::unique_ptr<BlobUpload>> StartWrite(const v1::Digest& digest,
                                                                 int64_t offset) = 0;

  // NOT_FOUND when the store does not hold the blob.
  virtual absl::StatusOr<std::unique_ptr<BlobReader>> StartRead(const v1::Digest& digest,
                                                                int64_t offset) = 0;

  // A whole blob of at most `max` bytes (a Directory), checked as StartRead.
  virtual absl::StatusOr<std::string> ReadSmall(const v1::Digest& digest, int64_t max) = 0;

  // Pins the trees `roots` (and everything reachable from them) for the job
  // `job_id` until Unpin(job_id).
  virtual absl::Status Pin(const std::string& job_id, const std::vector<v1::Digest>& roots) = 0;
  virtual absl::Status Unpin(const std::string& job_id) = 0;

  // Deletes the blobs no pinned tree reaches that were not used within
  // `grace` of `now`, and partial uploads untouched as long; then, while the
  // store holds more than max_bytes(), more of the unreferenced ones, oldest
  // use first (a blob a pinned tree reaches is never deleted).
  virtual absl::StatusOr<BlobGcStats> CollectGarbage(absl::Time now, absl::Duration grace) = 0;
};

// Checks that the store holds every blob of the tree `root` (FAILED_PRECONDITION
// naming the first missing one and where in the tree it is) and that every
// directory is well formed (INVALID_ARGUMENT). `input` names the tree in
// messages ("input 'torch_musa'").
absl::StatusOr<content::TreeStats> CheckTreeComplete(BlobStore& store, const v1::Digest& root,
                                                    absl::string_view input);

// Directory blobs larger than this are refused (a directory of ~100,000 entries).
inline constexpr int64_t kMaxDirectoryBlobBytes = 16 << 20;

// --- shared by the backends (LocalBlobStore, PostgresBlobStore) --------------

// A complete blob as an index lists it.
struct IndexedBlob {
  std::string sha256;
  int64_t size = 0;
  int64_t last_used_us = 0;
};

// The blobs the trees `roots` reach (their directories and files), read
// through `store`. A tree that cannot be walked whole keeps what was reached:
// the rest of it was already missing or corrupt (logged).
std::set<std::string> ReachableBlobs(BlobStore& store, const std::vector<v1::Digest>& roots);

// What garbage collection deletes of `oldest_use_first` (every complete blob,
// by last use): those not in `keep` used before `cutoff_us`, then, oldest use
// first, more of those not in `keep` while the rest holds more than
// `target_bytes`; with `only_if_enough`, none of the latter unless that brings
// it down to `target_bytes` (an upload that would not fit anyway deletes
// nothing for it).
struct GarbageChoice {
  std::vector<IndexedBlob> doomed;
  int64_t evicted_bytes = 0;  // of those, deleted before their grace
};
GarbageChoice ChooseGarbage(const std::vector<IndexedBlob>& oldest_use_first,
                            const std::set<std::string>& keep, int64_t cutoff_us,
                            int64_t target_bytes, bool only_if_enough);

// What a store's StartWrite decides, under its lock, about an upload of
// `digest` when it holds `indexed_size` bytes of it as a complete blob (-1:
// none) and `total` bytes in all: true, admitted and marked in `uploading`
// (the caller ends the mark when the upload ends); false, it does not fit and
// unreferenced blobs may make room once (`made_room` false); otherwise
// ALREADY_EXISTS (held), ABORTED (another call uploads it) or
// RESOURCE_EXHAUSTED (it does not fit, room or not).
absl::StatusOr<bool> AdmitUpload(const v1::Digest& digest, int64_t indexed_size, int64_t total,
                                 int64_t max_bytes, bool made_room,
                                 std::set<std::string>* uploading);

}  // namespace musafarm::coordinator
