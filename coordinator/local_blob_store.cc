#include "coordinator/local_blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/file_modes.h"
#include "common/format_bytes.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "content/digest.h"

namespace musafarm::coordinator {
namespace {

constexpr int kBusyTimeoutMs = 5000;

std::shared_ptr<spdlog::logger> Log() { return GetLogger("blob_store"); }

absl::Status ErrnoError(const std::string& path, int e) {
  return absl::InternalError(absl::StrCat("blob store: ", path, ": ", std::strerror(e)));
}

// Reads up to `n` bytes at the file offset; short only at the end.
absl::StatusOr<std::string> ReadUpTo(int fd, size_t n, const std::string& path) {
  std::string buf(n, '\0');
  size_t got = 0;
  while (got < n) {
    const ssize_t r = ::read(fd, buf.data() + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return ErrnoError(path, errno);
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  buf.resize(got);
  return buf;
}

}  // namespace

// An upload: appends to partial/<sha256>, hashing as it goes.
class LocalBlobStore::Upload final : public BlobUpload {
 public:
  Upload(LocalBlobStore* store, v1::Digest digest, int fd, int64_t offset,
         std::unique_ptr<content::Hasher> hasher)
      : store_(store), digest_(std::move(digest)), fd_(fd), size_(offset),
        hasher_(std::move(hasher)) {}
  ~Upload() override {
    if (fd_ >= 0) ::close(fd_);
    store_->EndUpload(digest_.sha256());  // the partial file stays for a resume
  }

  absl::Status Append(absl::string_view data) override {
    if (size_ + static_cast<int64_t>(data.size()) > digest_.size_bytes()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "blob ", content::ShortDigest(digest_), ": ", size_ + static_cast<int64_t>(data.size()),
          " bytes sent, more than its size"));
    }
    const std::string path = store_->PartialPath(digest_.sha256());
    absl::string_view rest = data;
    while (!rest.empty()) {
      const ssize_t n = ::write(fd_, rest.data(), rest.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoError(path, errno);
      rest.remove_prefix(static_cast<size_t>(n));
    }
    hasher_->Update(data);
    size_ += static_cast<int64_t>(data.size());
    return absl::OkStatus();
  }

  absl::Status Finish() override {
    const std::string partial = store_->PartialPath(digest_.sha256());
    if (size_ != digest_.size_bytes()) {
      return absl::InvalidArgumentError(absl::StrCat("blob ", content::ShortDigest(digest_),
                                                     ": the upload ended after ", size_,
                                                     " of its ", digest_.size_bytes(), " bytes"));
    }
    const std::string actual = hasher_->FinishHex();
    if (actual != digest_.sha256()) {
      ::unlink(partial.c_str());
      return absl::InvalidArgumentError(absl::StrCat(
          "blob ", content::ShortDigest(digest_), " refused: its bytes hash to sha256:",
          actual.substr(0, 12), ", not to its name (changed while being sent, or corrupted)"));
    }
    if (::fdatasync(fd_) != 0) return ErrnoError(partial, errno);
    ::close(fd_);
    fd_ = -1;
    const std::string final_path = store_->BlobPath(digest_.sha256());
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(final_path).parent_path(), ec);
    if (::rename(partial.c_str(), final_path.c_str()) != 0) return ErrnoError(final_path, errno);
    return store_->Commit(digest_);
  }

  int64_t committed_size() const override { return size_; }

 private:
  LocalBlobStore* const store_;
  const v1::Digest digest_;
  int fd_;
  int64_t size_;
  std::unique_ptr<content::Hasher> hasher_;
};

// A read of blobs/../<sha256>: hashes everything, from byte 0, so that the
// last Next() can say whether the bytes still match their name.
class LocalBlobStore::Reader final : public BlobReader {
 public:
  Reader(LocalBlobStore* store, v1::Digest digest, int fd, int64_t offset)
      : store_(store), digest_(std::move(digest)), fd_(fd), skip_(offset) {}
  ~Reader() override { ::close(fd_); }

  absl::StatusOr<std::string> Next(size_t max) override {
    const std::string path = store_->BlobPath(digest_.sha256());
    while (skip_ > 0) {  // hashed, not sent
      MF_ASSIGN_OR_RETURN(std::string head,
                          ReadUpTo(fd_, static_cast<size_t>(std::min<int64_t>(skip_, 1 << 20)), path));
      if (head.empty()) break;
      hasher_.Update(head);
      read_ += static_cast<int64_t>(head.size());
      skip_ -= static_cast<int64_t>(head.size());
    }
    MF_ASSIGN_OR_RETURN(std::string data, ReadUpTo(fd_, max, path));
    hasher_.Update(data);
    read_ += static_cast<int64_t>(data.size());
    if (!data.empty() && read_ <= digest_.size_bytes()) return data;
    if (done_) return std::string();
    done_ = true;
    const std::string actual = read_ == digest_.size_bytes() && data.empty()
                                   ? hasher_.FinishHex()
                                   : std::string("(the file has another size)");
    if (actual != digest_.sha256()) return store_->DropCorrupt(digest_, actual);
    return std::string();
  }

 private:
  LocalBlobStore* const store_;
  const v1::Digest digest_;
  const int fd_;
  int64_t skip_;
  int64_t read_ = 0;
  bool done_ = false;
  content::Hasher hasher_;
};

absl::StatusOr<std::unique_ptr<LocalBlobStore>> LocalBlobStore::Open(LocalBlobStoreOptions options) {
  MF_RETURN_IF_ERROR(MakePrivateDir(options.dir));
  MF_RETURN_IF_ERROR(MakePrivateDir(options.dir + "/partial"));
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(options.db_path.c_str(), &raw,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
  sql::DbPtr db(raw);
  if (rc != SQLITE_OK) {
    return sql::SqliteError(db.get(), rc, absl::StrCat("open \"", options.db_path, "\""));
  }
  (void)sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);
  MF_ASSIGN_OR_RETURN(int64_t version, sql::QueryInt(db.get(), "PRAGMA user_version", "blob index"));
  if (version < 7) {
    return absl::FailedPreconditionError(absl::StrCat(
        "blob store: \"", options.db_path, "\" is at schema version ", version,
        "; open it with the coordinator's store first (it migrates to 7, the blob index)"));
  }
  return std::unique_ptr<LocalBlobStore>(new LocalBlobStore(std::move(options), std::move(db)));
}

std::string LocalBlobStore::BlobPath(const std::string& sha256) const {
  return absl::StrCat(options_.dir, "/", sha256.substr(0, 2), "/", sha256);
}

std::string LocalBlobStore::PartialPath(const std::string& sha256) const {
  return absl::StrCat(options_.dir, "/partial/", sha256);
}

absl::Status LocalBlobStore::Exec(absl::string_view sql_text, absl::string_view what,
                                  const std::function<void(sql::Statement&)>& bind,
                                  const std::function<void(sql::Statement&)>& row) {
  MF_ASSIGN_OR_RETURN(sql::Statement s, sql::Statement::Prepare(db_.get(), sql_text, false));
  sql::ResetOnExit reset(s);
  if (bind) bind(s);
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    if (row) row(s);
  }
  if (rc != SQLITE_DONE) return s.Error(rc, what);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> LocalBlobStore::IndexedSize(const std::string& sha256) {
  int64_t size = -1;
  MF_RETURN_IF_ERROR(Exec(
      "SELECT size FROM blobs WHERE sha256 = ?1", "blob index: look up",
      [&](sql::Statement& s) { s.BindText(1, sha256); },
      [&](sql::Statement& s) { size = s.ColumnInt64(0); }));
  return size;
}

absl::StatusOr<int64_t> LocalBlobStore::TotalBytes() {
  int64_t total = 0;
  MF_RETURN_IF_ERROR(Exec("SELECT COALESCE(SUM(size), 0) FROM blobs", "blob index: total", nullptr,
                          [&](sql::Statement& s) { total = s.ColumnInt64(0); }));
  return total;
}

absl::Status LocalBlobStore::Touch(const std::string& sha256) {
  const int64_t now = ToMicros(options_.clock->Now());
  return Exec("UPDATE blobs SET last_used_us = ?2 WHERE sha256 = ?1", "blob index: touch",
              [&](sql::Statement& s) {
                s.BindText(1, sha256);
                s.BindInt64(2, now);
              });
}

absl::StatusOr<std::vector<v1::Digest>> LocalBlobStore::FindMissing(
    const std::vector<v1::Digest>& digests) {
  std::vector<v1::Digest> missing;
  absl::MutexLock lock(&mu_);
  MF_RETURN_IF_ERROR(sql::Exec(db_.get(), "BEGIN IMMEDIATE", "blob index: begin"));
  for (const v1::Digest& d : digests) {
    absl::StatusOr<int64_t> size = IndexedSize(d.sha256());
    absl::Status touched = size.ok() && *size == d.size_bytes() ? Touch(d.sha256()) : size.status();
    if (!touched.ok()) {
      (void)sql::Exec(db_.get(), "ROLLBACK", "blob index: rollback");  // reported below
      return touched;
    }
    if (*size != d.size_bytes()) missing.push_back(d);
  }
  MF_RETURN_IF_ERROR(sql::Exec(db_.get(), "COMMIT", "blob index: commit"));
  return missing;
}

absl::StatusOr<BlobWriteState> LocalBlobStore::QueryWrite(const v1::Digest& digest) {
  {
    absl::MutexLock lock(&mu_);
    MF_ASSIGN_OR_RETURN(int64_t size, IndexedSize(digest.sha256()));
    if (size == digest.size_bytes()) return BlobWriteState{size, true};
  }
  struct stat st;
  if (::stat(PartialPath(digest.sha256()).c_str(), &st) != 0) return BlobWriteState{};
  return BlobWriteState{std::min<int64_t>(st.st_size, digest.size_bytes()), false};
}

absl::StatusOr<std::unique_ptr<BlobUpload>> LocalBlobStore::StartWrite(const v1::Digest& digest,
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
  const std::string partial = PartialPath(sha);
  struct stat st;
  const int64_t held = ::stat(partial.c_str(), &st) == 0 ? st.st_size : 0;
  if (offset != 0 && offset != held) {
    EndUpload(sha);
    return absl::OutOfRangeError(absl::StrCat("blob ", content::ShortDigest(digest),
                                              ": the upload cannot start at byte ", offset,
                                              "; the coordinator holds ", held,
                                              " bytes of it (resume there, or at 0)"));
  }
  const int fd = ::open(partial.c_str(),
                        O_RDWR | O_CREAT | O_CLOEXEC | (offset == 0 ? O_TRUNC : 0), 0600);
  if (fd < 0) {
    const absl::Status s = ErrnoError(partial, errno);
    EndUpload(sha);
    return s;
  }
  // Resuming: the bytes already held are hashed again (they were written by
  // an earlier call whose hasher is gone).
  auto hasher = std::make_unique<content::Hasher>();
  for (int64_t done = 0; done < offset;) {
    absl::StatusOr<std::string> piece =
        ReadUpTo(fd, static_cast<size_t>(std::min<int64_t>(offset - done, 1 << 20)), partial);
    if (!piece.ok() || piece->empty()) {
      ::close(fd);
      EndUpload(sha);
      return piece.ok() ? absl::InternalError(absl::StrCat(partial, ": shorter than ", offset))
                        : piece.status();
    }
    hasher->Update(*piece);
    done += static_cast<int64_t>(piece->size());
  }
  return std::unique_ptr<BlobUpload>(new Upload(this, digest, fd, offset, std::move(hasher)));
}

void LocalBlobStore::EndUpload(const std::string& sha256) {
  absl::MutexLock lock(&mu_);
  uploading_.erase(sha256);
}

absl::Status LocalBlobStore::Commit(const v1::Digest& digest) {
  const int64_t now = ToMicros(options_.clock->Now());
  absl::MutexLock lock(&mu_);
  return Exec(
      "INSERT INTO blobs(sha256, size, created_us, last_used_us) VALUES(?1, ?2, ?3, ?3) "
      "ON CONFLICT(sha256) DO UPDATE SET size = excluded.size, last_used_us = excluded.last_used_us",
      "blob index: add", [&](sql::Statement& s) {
        s.BindText(1, digest.sha256());
        s.BindInt64(2, digest.size_bytes());
        s.BindInt64(3, now);
      });
}

absl::Status LocalBlobStore::DropCorrupt(const v1::Digest& digest, const std::string& actual) {
  Log()->error("blob {} is corrupt on disk (its bytes hash to {}); deleted", content::ShortDigest(digest),
               actual);
  ::unlink(BlobPath(digest.sha256()).c_str());
  {
    absl::MutexLock lock(&mu_);
    (void)Exec("DELETE FROM blobs WHERE sha256 = ?1", "blob index: drop",
               [&](sql::Statement& s) { s.BindText(1, digest.sha256()); });  // the file is gone anyway
  }
  return absl::DataLossError(absl::StrCat("blob ", content::ShortDigest(digest),
                                          " was corrupt on the coordinator and is deleted; "
                                          "submit again to upload it"));
}

absl::StatusOr<std::unique_ptr<BlobReader>> LocalBlobStore::StartRead(const v1::Digest& digest,
                                                                      int64_t offset) {
  {
    absl::MutexLock lock(&mu_);
    MF_ASSIGN_OR_RETURN(int64_t size, IndexedSize(digest.sha256()));
    if (size != digest.size_bytes()) {
      return absl::NotFoundError(
          absl::StrCat("blob ", content::ShortDigest(digest), " is not in the content store"));
    }
    MF_RETURN_IF_ERROR(Touch(digest.sha256()));
  }
  if (offset < 0 || offset > digest.size_bytes()) {
    return absl::OutOfRangeError(absl::StrCat("blob ", content::ShortDigest(digest),
                                              ": offset ", offset, " is outside it"));
  }
  const std::string path = BlobPath(digest.sha256());
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return DropCorrupt(digest, "(the file is missing)");
    return ErrnoError(path, errno);
  }
  return std::unique_ptr<BlobReader>(new Reader(this, digest, fd, offset));
}

absl::StatusOr<std::string> LocalBlobStore::ReadSmall(const v1::Digest& digest, int64_t max) {
  if (digest.size_bytes() > max) {
    return absl::InvalidArgumentError(absl::StrCat("blob ", content::ShortDigest(digest),
                                                   " is larger than ", max, " bytes"));
  }
  MF_ASSIGN_OR_RETURN(std::unique_ptr<BlobReader> r, StartRead(digest, 0));
  std::string out;
  for (;;) {
    MF_ASSIGN_OR_RETURN(std::string piece, r->Next(1 << 20));
    if (piece.empty()) break;
    out += piece;
  }
  return out;
}

absl::Status LocalBlobStore::Pin(const std::string& job_id, const std::vector<v1::Digest>& roots) {
  absl::MutexLock lock(&mu_);
  for (const v1::Digest& d : roots) {
    MF_RETURN_IF_ERROR(Exec("INSERT OR IGNORE INTO blob_pins(job_id, sha256) VALUES(?1, ?2)",
                            "blob index: pin", [&](sql::Statement& s) {
                              s.BindText(1, job_id);
                              s.BindText(2, d.sha256());
                            }));
  }
  return absl::OkStatus();
}

absl::Status LocalBlobStore::Unpin(const std::string& job_id) {
  absl::MutexLock lock(&mu_);
  return Exec("DELETE FROM blob_pins WHERE job_id = ?1", "blob index: unpin",
              [&](sql::Statement& s) { s.BindText(1, job_id); });
}

absl::StatusOr<std::set<std::string>> LocalBlobStore::Reachable() {
  // Pinned roots and their sizes (a pin names only the hash).
  std::vector<v1::Digest> roots;
  {
    absl::MutexLock lock(&mu_);
    MF_RETURN_IF_ERROR(Exec(
        "SELECT DISTINCT p.sha256, b.size FROM blob_pins p JOIN blobs b ON b.sha256 = p.sha256",
        "blob index: pins", nullptr, [&](sql::Statement& s) {
          v1::Digest d;
          d.set_sha256(std::string(s.ColumnText(0)));
          d.set_size_bytes(s.ColumnInt64(1));
          roots.push_back(std::move(d));
        }));
  }
  return ReachableBlobs(*this, roots);
}

absl::StatusOr<BlobGcStats> LocalBlobStore::DeleteUnreferenced(int64_t cutoff_us,
                                                               int64_t target_bytes,
                                                               bool only_if_enough) {
  MF_ASSIGN_OR_RETURN(std::set<std::string> keep, Reachable());
  GarbageChoice choice;
  BlobGcStats stats;
  {
    absl::MutexLock lock(&mu_);
    // Blobs being uploaded again are kept too.
    keep.insert(uploading_.begin(), uploading_.end());
    std::vector<IndexedBlob> blobs;
    MF_RETURN_IF_ERROR(Exec("SELECT sha256, size, last_used_us FROM blobs ORDER BY last_used_us",
                            "blob index: scan", nullptr, [&](sql::Statement& s) {
                              blobs.push_back(IndexedBlob{std::string(s.ColumnText(0)),
                                                          s.ColumnInt64(1), s.ColumnInt64(2)});
                            }));
    choice = ChooseGarbage(blobs, keep, cutoff_us, target_bytes, only_if_enough);
    for (const IndexedBlob& gone : choice.doomed) {
      MF_RETURN_IF_ERROR(Exec("DELETE FROM blobs WHERE sha256 = ?1", "blob index: delete",
                              [&](sql::Statement& s) { s.BindText(1, gone.sha256); }));
    }
    MF_ASSIGN_OR_RETURN(stats.kept_bytes, TotalBytes());
    MF_RETURN_IF_ERROR(Exec("SELECT count(*) FROM blobs", "blob index: count", nullptr,
                            [&](sql::Statement& s) { stats.kept = s.ColumnInt64(0); }));
  }
  for (const IndexedBlob& gone : choice.doomed) {
    ::unlink(BlobPath(gone.sha256).c_str());
    ++stats.deleted;
    stats.freed_bytes += gone.size;
  }
  if (choice.evicted_bytes > 0) {
    Log()->info("content store over its limit of {} (--blob-store-bytes): {} of unreferenced "
                "blobs deleted before their grace, oldest use first",
                FormatBytes(static_cast<uint64_t>(options_.max_bytes)),
                FormatBytes(static_cast<uint64_t>(choice.evicted_bytes)));
  }
  return stats;
}

absl::StatusOr<BlobGcStats> LocalBlobStore::CollectGarbage(absl::Time now, absl::Duration grace) {
  MF_ASSIGN_OR_RETURN(BlobGcStats stats,
                      DeleteUnreferenced(ToMicros(now - grace), options_.max_bytes,
                                         /*only_if_enough=*/false));
  // Partial uploads nobody resumed within the grace period.
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.dir + "/partial", ec)) {
    const std::string name = entry.path().filename().string();
    struct stat st;
    if (::stat(entry.path().c_str(), &st) != 0) continue;
    if (absl::FromTimeT(st.st_mtime) >= now - grace) continue;
    absl::MutexLock lock(&mu_);
    if (uploading_.count(name) == 0) ::unlink(entry.path().c_str());
  }
  return stats;
}

}  // namespace musafarm::coordinator
