#include "coordinator/postgres_blob_store.h"

#include <algorithm>
#include <limits>
#include <map>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/format_bytes.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "content/digest.h"
#include "coordinator/postgres_store.h"

namespace musafarm::coordinator {
namespace {

using pg::Params;
using pg::Query;
using pg::Result;

std::shared_ptr<spdlog::logger> Log() { return GetLogger("blob_store"); }

constexpr Query kIndexedSize{"blobs_indexed_size",
                             "SELECT size FROM blobs WHERE sha256 = $1 AND complete"};
constexpr Query kTotals{"blobs_totals",
                        "SELECT count(*), coalesce(sum(size), 0)::bigint FROM blobs WHERE complete"};
constexpr Query kPartialSize{"blobs_partial_size",
                             "SELECT off + length(bytes) FROM blob_chunks WHERE sha256 = $1 "
                             "ORDER BY off DESC LIMIT 1"};
constexpr Query kChunkAt{"blobs_chunk_at",
                         "SELECT bytes FROM blob_chunks WHERE sha256 = $1 AND off = $2"};
// An upload from byte 0: the row (partial) and no bytes.
constexpr Query kBeginUpload{
    "blobs_begin_upload",
    "INSERT INTO blobs(sha256, size, created_us, last_used_us, complete) "
    "VALUES($1, $2, $3, $3, false) ON CONFLICT(sha256) DO UPDATE SET size = excluded.size, "
    "last_used_us = excluded.last_used_us, complete = false"};
constexpr Query kDropChunks{"blobs_drop_chunks", "DELETE FROM blob_chunks WHERE sha256 = $1"};
constexpr Query kWriteChunk{"blobs_write_chunk",
                            "INSERT INTO blob_chunks(sha256, off, bytes) VALUES($1, $2, $3)"};
constexpr Query kTouch{"blobs_touch", "UPDATE blobs SET last_used_us = $2 WHERE sha256 = $1"};
constexpr Query kComplete{"blobs_complete",
                          "UPDATE blobs SET complete = true, size = $2, last_used_us = $3 "
                          "WHERE sha256 = $1"};
constexpr Query kDelete{"blobs_delete", "DELETE FROM blobs WHERE sha256 = $1"};
constexpr Query kHeld{"blobs_held",
                      "SELECT sha256, size FROM blobs WHERE complete AND sha256 = ANY($1::text[])"};
constexpr Query kTouchAll{"blobs_touch_all",
                          "UPDATE blobs SET last_used_us = $2 WHERE sha256 = ANY($1::text[])"};
constexpr Query kPin{"blobs_pin",
                     "INSERT INTO blob_pins(job_id, sha256) VALUES($1, $2) ON CONFLICT DO NOTHING"};
constexpr Query kUnpin{"blobs_unpin", "DELETE FROM blob_pins WHERE job_id = $1"};
constexpr Query kPinnedRoots{"blobs_pinned_roots",
                             "SELECT DISTINCT p.sha256, b.size FROM blob_pins p JOIN blobs b ON "
                             "b.sha256 = p.sha256 WHERE b.complete"};
constexpr Query kByLastUse{"blobs_by_last_use",
                           "SELECT sha256, size, last_used_us FROM blobs WHERE complete "
                           "ORDER BY last_used_us, sha256"};
// Partial uploads untouched since $1 that no call is writing now ($2).
constexpr Query kDropStalePartials{
    "blobs_drop_stale_partials",
    "DELETE FROM blobs WHERE NOT complete AND last_used_us < $1 AND sha256 <> ALL($2::text[])"};

// A text[] literal: every element quoted, so any string is safe in it.
std::string ArrayLiteral(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : values[i]) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  out += '}';
  return out;
}

}  // namespace

// An upload: bytes are hashed as they come and written a chunk at a time; a
// short tail waits for more, for Finish, or for the end of the call (the
// destructor), so an interrupted upload keeps everything it received.
class PostgresBlobStore::Upload final : public BlobUpload {
 public:
  Upload(PostgresBlobStore* store, v1::Digest digest, int64_t offset,
         std::unique_ptr<content::Hasher> hasher)
      : store_(store), digest_(std::move(digest)), stored_(offset), hasher_(std::move(hasher)) {}
  ~Upload() override {
    if (absl::Status s = WriteBuffer(); !s.ok()) {
      Log()->warn("blob {}: the last {} bytes of an interrupted upload are lost: {}",
                  content::ShortDigest(digest_), buffer_.size(), s.ToString());
    }
    store_->EndUpload(digest_.sha256());
  }

  absl::Status Append(absl::string_view data) override {
    if (committed_size() + static_cast<int64_t>(data.size()) > digest_.size_bytes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "blob ", content::ShortDigest(digest_), ": ",
          committed_size() + static_cast<int64_t>(data.size()), " bytes sent, more than its size"));
    }
    hasher_->Update(data);
    buffer_.append(data.data(), data.size());
    while (static_cast<int64_t>(buffer_.size()) >= kChunkBytes) {
      MF_RETURN_IF_ERROR(store_->WriteChunk(digest_.sha256(), stored_,
                                            absl::string_view(buffer_).substr(0, kChunkBytes)));
      stored_ += kChunkBytes;
      buffer_.erase(0, kChunkBytes);
    }
    return absl::OkStatus();
  }

  absl::Status Finish() override {
    if (committed_size() != digest_.size_bytes()) {
      return absl::InvalidArgumentError(absl::StrCat("blob ", content::ShortDigest(digest_),
                                                     ": the upload ended after ", committed_size(),
                                                     " of its ", digest_.size_bytes(), " bytes"));
    }
    const std::string actual = hasher_->FinishHex();
    if (actual != digest_.sha256()) {
      buffer_.clear();
      MF_RETURN_IF_ERROR(store_->Delete(digest_.sha256()));
      return absl::InvalidArgumentError(absl::StrCat(
          "blob ", content::ShortDigest(digest_), " refused: its bytes hash to sha256:",
          actual.substr(0, 12), ", not to its name (changed while being sent, or corrupted)"));
    }
    MF_RETURN_IF_ERROR(WriteBuffer());
    return store_->Commit(digest_);
  }

  int64_t committed_size() const override {
    return stored_ + static_cast<int64_t>(buffer_.size());
  }

 private:
  absl::Status WriteBuffer() {
    if (buffer_.empty()) return absl::OkStatus();
    MF_RETURN_IF_ERROR(store_->WriteChunk(digest_.sha256(), stored_, buffer_));
    stored_ += static_cast<int64_t>(buffer_.size());
    buffer_.clear();
    return absl::OkStatus();
  }

  PostgresBlobStore* const store_;
  const v1::Digest digest_;
  int64_t stored_;      // bytes in blob_chunks
  std::string buffer_;  // received, not yet written (less than a chunk)
  std::unique_ptr<content::Hasher> hasher_;
};

// A read, a chunk at a time: hashes everything from byte 0, so that the last
// Next() can say whether the bytes still match their name.
class PostgresBlobStore::Reader final : public BlobReader {
 public:
  Reader(PostgresBlobStore* store, v1::Digest digest, int64_t offset)
      : store_(store), digest_(std::move(digest)), skip_(offset) {}

  absl::StatusOr<std::string> Next(size_t max) override {
    for (;;) {
      const size_t left = chunk_.size() - pos_;
      if (left > 0 && skip_ > 0) {  // hashed, not sent
        const size_t n = static_cast<size_t>(std::min<int64_t>(skip_, static_cast<int64_t>(left)));
        pos_ += n;
        skip_ -= static_cast<int64_t>(n);
        continue;
      }
      if (left > 0) {
        std::string out = chunk_.substr(pos_, std::min(max, left));
        pos_ += out.size();
        return out;
      }
      if (done_) return std::string();
      MF_ASSIGN_OR_RETURN(chunk_, store_->ChunkAt(digest_.sha256(), read_));
      pos_ = 0;
      hasher_.Update(chunk_);
      read_ += static_cast<int64_t>(chunk_.size());
      if (!chunk_.empty() && read_ <= digest_.size_bytes()) continue;
      done_ = true;
      chunk_.clear();
      const std::string actual = read_ == digest_.size_bytes()
                                     ? hasher_.FinishHex()
                                     : std::string("(the stored bytes have another size)");
      if (actual != digest_.sha256()) return store_->DropCorrupt(digest_, actual);
      return std::string();
    }
  }

 private:
  PostgresBlobStore* const store_;
  const v1::Digest digest_;
  int64_t skip_;
  int64_t read_ = 0;  // bytes fetched and hashed
  std::string chunk_;
  size_t pos_ = 0;  // of chunk_, sent or skipped
  bool done_ = false;
  content::Hasher hasher_;
};

absl::StatusOr<std::unique_ptr<PostgresBlobStore>> PostgresBlobStore::Open(
    PostgresBlobStoreOptions options) {
  MF_ASSIGN_OR_RETURN(std::unique_ptr<pg::Connection> conn, pg::Connection::Open(options.url));
  MF_RETURN_IF_ERROR(MigratePostgresSchema(*conn));
  MF_RETURN_IF_ERROR(conn->SetFence(options.fence_epoch));
  return std::unique_ptr<PostgresBlobStore>(
      new PostgresBlobStore(std::move(options), std::move(conn)));
}

absl::StatusOr<int64_t> PostgresBlobStore::IndexedSize(const std::string& sha256) {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kIndexedSize, Params().Text(sha256), "blob index: look up"));
  return r.rows() == 0 ? -1 : r.Int(0, 0);
}

absl::StatusOr<int64_t> PostgresBlobStore::TotalBytes() {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kTotals, Params(), "blob index: total"));
  return r.Int(0, 1);
}

absl::StatusOr<int64_t> PostgresBlobStore::PartialSize(const std::string& sha256) {
  MF_ASSIGN_OR_RETURN(Result r,
                      conn_->Run(kPartialSize, Params().Text(sha256), "blob store: partial size"));
  return r.rows() == 0 ? 0 : r.Int(0, 0);
}

absl::StatusOr<std::string> PostgresBlobStore::ChunkAt(const std::string& sha256, int64_t off) {
  absl::MutexLock lock(&mu_);
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kChunkAt, Params().Text(sha256).Int(off),
                                           "blob store: read a chunk"));
  return r.rows() == 0 ? std::string() : r.String(0, 0);
}

absl::Status PostgresBlobStore::WriteChunk(const std::string& sha256, int64_t off,
                                           absl::string_view bytes) {
  const int64_t now = ToMicros(options_.clock->Now());
  pg::Batch batch;
  batch.Add(kWriteChunk, Params().Text(sha256).Int(off).Bytes(bytes), "blob store: write a chunk");
  batch.Add(kTouch, Params().Text(sha256).Int(now), "blob store: touch an upload");
  absl::MutexLock lock(&mu_);
  return conn_->Commit(batch);
}

absl::StatusOr<std::vector<v1::Digest>> PostgresBlobStore::FindMissing(
    const std::vector<v1::Digest>& digests) {
  std::vector<std::string> shas;
  for (const v1::Digest& d : digests) shas.push_back(d.sha256());
  absl::MutexLock lock(&mu_);
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kHeld, Params().Text(ArrayLiteral(shas)),
                                           "blob index: look up"));
  std::map<std::string, int64_t> held;
  for (int i = 0; i < r.rows(); ++i) held[r.String(i, 0)] = r.Int(i, 1);
  std::vector<v1::Digest> missing;
  std::vector<std::string> used;
  for (const v1::Digest& d : digests) {
    auto it = held.find(d.sha256());
    if (it != held.end() && it->second == d.size_bytes()) {
      used.push_back(d.sha256());
    } else {
      missing.push_back(d);
    }
  }
  if (!used.empty()) {
    pg::Batch batch;
    batch.Add(kTouchAll, Params().Text(ArrayLiteral(used)).Int(ToMicros(options_.clock->Now())),
              "blob index: touch");
    MF_RETURN_IF_ERROR(conn_->Commit(batch));
  }
  return missing;
}

absl::StatusOr<BlobWriteState> PostgresBlobStore::QueryWrite(const v1::Digest& digest) {
  absl::MutexLock lock(&mu_);
  MF_ASSIGN_OR_RETURN(int64_t size, IndexedSize(digest.sha256()));
  if (size == digest.size_bytes()) return BlobWriteState{size, true};
  MF_ASSIGN_OR_RETURN(int64_t held, PartialSize(digest.sha256()));
  return BlobWriteState{std::min<int64_t>(held, digest.size_bytes()), false};
}

absl::StatusOr<std::unique_ptr<BlobUpload>> PostgresBlobStore::StartWrite(const v1::Digest& digest,
                                                                          int64_t offset) {
  const std::string& sha = digest.sha256();
  // Over the limit, unreferenced blobs make room (oldest use first) once;
  // what still does not fit is refused.
  for (bool made_room = false;; made_room = true) {
    absl::StatusOr<bool> admitted = [&]() -> absl::StatusOr<bool> {
      absl::MutexLock lock(&mu_);
      MF_ASSIGN_OR_RETURN(int64_t size, IndexedSize(sha));
      MF_ASSIGN_OR_RETURN(int64_t total, TotalBytes());
      return AdmitUpload(digest, size, total, options_.max_bytes, made_room, &uploading_);
    }();
    if (!admitted.ok()) return admitted.status();
    if (*admitted) break;
    MF_RETURN_IF_ERROR(DeleteUnreferenced(std::numeric_limits<int64_t>::min(),
                                          options_.max_bytes - digest.size_bytes(),
                                          /*only_if_enough=*/true)
                           .status());
  }
  // From here EndUpload() runs on every path (the Upload's destructor, or below).
  absl::Status started = [&]() -> absl::Status {
    absl::MutexLock lock(&mu_);
    MF_ASSIGN_OR_RETURN(int64_t held, PartialSize(sha));
    if (offset != 0 && offset != held) {
      return absl::OutOfRangeError(absl::StrCat("blob ", content::ShortDigest(digest),
                                                ": the upload cannot start at byte ", offset,
                                                "; the coordinator holds ", held,
                                                " bytes of it (resume there, or at 0)"));
    }
    pg::Batch batch;
    const int64_t now = ToMicros(options_.clock->Now());
    if (offset == 0) {
      batch.Add(kBeginUpload, Params().Text(sha).Int(digest.size_bytes()).Int(now),
                "blob store: begin an upload");
      batch.Add(kDropChunks, Params().Text(sha), "blob store: start an upload over");
    } else {
      batch.Add(kTouch, Params().Text(sha).Int(now), "blob store: resume an upload");
    }
    return conn_->Commit(batch);
  }();
  if (!started.ok()) {
    EndUpload(sha);
    return started;
  }
  // Resuming: the bytes already held are hashed again (they were written by
  // an earlier call whose hasher is gone), a chunk at a time.
  auto hasher = std::make_unique<content::Hasher>();
  for (int64_t done = 0; done < offset;) {
    absl::StatusOr<std::string> piece = ChunkAt(sha, done);
    if (!piece.ok() || piece->empty()) {
      EndUpload(sha);
      return piece.ok() ? absl::InternalError(absl::StrCat("blob store: the partial upload of ",
                                                           content::ShortDigest(digest),
                                                           " is shorter than ", offset))
                        : piece.status();
    }
    hasher->Update(*piece);
    done += static_cast<int64_t>(piece->size());
  }
  return std::unique_ptr<BlobUpload>(new Upload(this, digest, offset, std::move(hasher)));
}

void PostgresBlobStore::EndUpload(const std::string& sha256) {
  absl::MutexLock lock(&mu_);
  uploading_.erase(sha256);
}

absl::Status PostgresBlobStore::Commit(const v1::Digest& digest) {
  pg::Batch batch;
  batch.Add(kComplete,
            Params().Text(digest.sha256()).Int(digest.size_bytes()).Int(
                ToMicros(options_.clock->Now())),
            "blob index: add");
  absl::MutexLock lock(&mu_);
  return conn_->Commit(batch);
}

absl::Status PostgresBlobStore::Delete(const std::string& sha256) {
  pg::Batch batch;
  batch.Add(kDelete, Params().Text(sha256), "blob index: drop");
  absl::MutexLock lock(&mu_);
  return conn_->Commit(batch);
}

absl::Status PostgresBlobStore::DropCorrupt(const v1::Digest& digest, const std::string& actual) {
  Log()->error("blob {} is corrupt in the database (its bytes hash to {}); deleted",
               content::ShortDigest(digest), actual);
  (void)Delete(digest.sha256());  // reported below either way
  return absl::DataLossError(absl::StrCat("blob ", content::ShortDigest(digest),
                                          " was corrupt on the coordinator and is deleted; "
                                          "submit again to upload it"));
}

absl::StatusOr<std::unique_ptr<BlobReader>> PostgresBlobStore::StartRead(const v1::Digest& digest,
                                                                         int64_t offset) {
  {
    absl::MutexLock lock(&mu_);
    MF_ASSIGN_OR_RETURN(int64_t size, IndexedSize(digest.sha256()));
    if (size != digest.size_bytes()) {
      return absl::NotFoundError(
          absl::StrCat("blob ", content::ShortDigest(digest), " is not in the content store"));
    }
    pg::Batch batch;
    batch.Add(kTouch, Params().Text(digest.sha256()).Int(ToMicros(options_.clock->Now())),
              "blob index: touch");
    MF_RETURN_IF_ERROR(conn_->Commit(batch));
  }
  if (offset < 0 || offset > digest.size_bytes()) {
    return absl::OutOfRangeError(absl::StrCat("blob ", content::ShortDigest(digest),
                                              ": offset ", offset, " is outside it"));
  }
  return std::unique_ptr<BlobReader>(new Reader(this, digest, offset));
}

absl::StatusOr<std::string> PostgresBlobStore::ReadSmall(const v1::Digest& digest, int64_t max) {
  if (digest.size_bytes() > max) {
    return absl::InvalidArgumentError(absl::StrCat("blob ", content::ShortDigest(digest),
                                                   " is larger than ", max, " bytes"));
  }
  MF_ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> r, StartRead(digest, 0));
  std::string out;
  for (;;) {
    MF_ASSIGN_OR_RETURN(std::string piece, r->Next(static_cast<size_t>(kChunkBytes)));
    if (piece.empty()) break;
    out += piece;
  }
  return out;
}

absl::Status PostgresBlobStore::Pin(const std::string& job_id,
                                    const std::vector<v1::Digest>& roots) {
  pg::Batch batch;
  for (const v1::Digest& d : roots) {
    batch.Add(kPin, Params().Text(job_id).Text(d.sha256()), "blob index: pin");
  }
  absl::MutexLock lock(&mu_);
  return conn_->Commit(batch);
}

absl::Status PostgresBlobStore::Unpin(const std::string& job_id) {
  pg::Batch batch;
  batch.Add(kUnpin, Params().Text(job_id), "blob index: unpin");
  absl::MutexLock lock(&mu_);
  return conn_->Commit(batch);
}

absl::StatusOr<BlobGcStats> PostgresBlobStore::DeleteUnreferenced(int64_t cutoff_us,
                                                                  int64_t target_bytes,
                                                                  bool only_if_enough) {
  std::vector<v1::Digest> roots;
  {
    absl::MutexLock lock(&mu_);
    MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kPinnedRoots, Params(), "blob index: pins"));
    for (int i = 0; i < r.rows(); ++i) {
      v1::Digest& d = roots.emplace_back();
      d.set_sha256(r.String(i, 0));
      d.set_size_bytes(r.Int(i, 1));
    }
  }
  std::set<std::string> keep = ReachableBlobs(*this, roots);
  BlobGcStats stats;
  absl::MutexLock lock(&mu_);
  keep.insert(uploading_.begin(), uploading_.end());  // being uploaded again
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kByLastUse, Params(), "blob index: scan"));
  std::vector<IndexedBlob> blobs;
  for (int i = 0; i < r.rows(); ++i) {
    blobs.push_back(IndexedBlob{r.String(i, 0), r.Int(i, 1), r.Int(i, 2)});
  }
  const GarbageChoice choice = ChooseGarbage(blobs, keep, cutoff_us, target_bytes, only_if_enough);
  pg::Batch batch;
  for (const IndexedBlob& gone : choice.doomed) {
    batch.Add(kDelete, Params().Text(gone.sha256), "blob index: delete");
    ++stats.deleted;
    stats.freed_bytes += gone.size;
  }
  MF_RETURN_IF_ERROR(conn_->Commit(batch));
  MF_ASSIGN_OR_RETURN(Result totals, conn_->Run(kTotals, Params(), "blob index: count"));
  stats.kept = totals.Int(0, 0);
  stats.kept_bytes = totals.Int(0, 1);
  if (choice.evicted_bytes > 0) {
    Log()->info("content store over its limit of {} (--blob-store-bytes): {} of unreferenced "
                "blobs deleted before their grace, oldest use first",
                FormatBytes(static_cast<uint64_t>(options_.max_bytes)),
                FormatBytes(static_cast<uint64_t>(choice.evicted_bytes)));
  }
  return stats;
}

absl::StatusOr<BlobGcStats> PostgresBlobStore::CollectGarbage(absl::Time now,
                                                              absl::Duration grace) {
  MF_ASSIGN_OR_RETURN(BlobGcStats stats,
                      DeleteUnreferenced(ToMicros(now - grace), options_.max_bytes,
                                         /*only_if_enough=*/false));
  // Partial uploads nobody resumed within the grace period.
  absl::MutexLock lock(&mu_);
  const std::vector<std::string> uploading(uploading_.begin(), uploading_.end());
  pg::Batch batch;
  batch.Add(kDropStalePartials,
            Params().Int(ToMicros(now - grace)).Text(ArrayLiteral(uploading)),
            "blob store: drop stale partial uploads");
  MF_RETURN_IF_ERROR(conn_->Commit(batch));
  return stats;
}

}  // namespace musafarm::coordinator
