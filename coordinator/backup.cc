#include "coordinator/backup.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include <openssl/evp.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/atomic_file.h"
#include "common/file_modes.h"
#include "common/status_macros.h"

namespace musafarm::coordinator {
namespace {

namespace fs = std::filesystem;

constexpr char kDatabase[] = "musafarm.db";
// What of a data dir a backup carries besides the database; anything else
// (lock, musafarm.db-wal, -shm, port files) belongs to a running process.
constexpr const char* kCopiedFiles[] = {"secrets.key"};
constexpr const char* kCopiedDirs[] = {"logs", "pki"};
constexpr int kBusyTimeoutMs = 10'000;

absl::Status IoError(const std::string& path, const std::string& what) {
  return absl::InternalError(absl::StrCat(path, ": ", what, ": ", std::strerror(errno)));
}

struct FileDigest {
  std::string sha256;  // hex
  uint64_t size = 0;
};

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};

struct MdFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

// Reads `from` to its end (as it is now: a running attempt's log may grow
// meanwhile), writing the bytes to `to` (0600, created) unless `to` is empty,
// and returns their digest.
absl::StatusOr<FileDigest> CopyAndHash(const std::string& from, const std::string& to) {
  FdCloser in{::open(from.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) return IoError(from, "open");
  std::unique_ptr<AtomicFile> out;
  if (!to.empty()) {
    MF_ASSIGN_OR_RETURN(out, AtomicFile::Create(to, kPrivateFileMode));
  }
  std::unique_ptr<EVP_MD_CTX, MdFree> md(EVP_MD_CTX_new());
  if (md == nullptr || EVP_DigestInit_ex(md.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("SHA-256 unavailable");
  }
  FileDigest digest;
  std::vector<char> buf(1 << 16);
  while (true) {
    const ssize_t n = ::read(in.fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return IoError(from, "read");
    if (n == 0) break;
    digest.size += static_cast<uint64_t>(n);
    (void)EVP_DigestUpdate(md.get(), buf.data(), static_cast<size_t>(n));  // cannot fail for SHA-256
    if (out != nullptr) {
      MF_RETURN_IF_ERROR(out->Append(absl::string_view(buf.data(), static_cast<size_t>(n))));
    }
  }
  unsigned char raw[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  (void)EVP_DigestFinal_ex(md.get(), raw, &len);
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    digest.sha256 += kHex[raw[i] >> 4];
    digest.sha256 += kHex[raw[i] & 15];
  }
  if (out != nullptr) MF_RETURN_IF_ERROR(out->Commit());
  return digest;
}

// Relative paths of the regular files under `root`/`dir`, sorted.
absl::StatusOr<std::vector<std::string>> FilesUnder(const std::string& root, const char* dir) {
  std::vector<std::string> files;
  std::error_code ec;
  const fs::path base = fs::path(root) / dir;
  if (!fs::exists(base, ec)) return files;
  for (auto it = fs::recursive_directory_iterator(base, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file(ec) && !absl::EndsWith(it->path().filename().string(), ".part")) {
      files.push_back(fs::relative(it->path(), root, ec).string());
    }
  }
  if (ec) return absl::InternalError(absl::StrCat(base.string(), ": ", ec.message()));
  std::sort(files.begin(), files.end());
  return files;
}

absl::Status MakeDirs(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat(dir.string(), ": ", ec.message()));
  fs::permissions(dir, fs::perms::owner_all, ec);
  return absl::OkStatus();
}

// SQLite's online backup of `db_path` into `dest_path`: pages are copied under
// one read transaction, so the copy is the database as of one commit; in WAL
// mode the coordinator's writes go on meanwhile.
absl::Status SnapshotDatabase(const std::string& db_path, const std::string& dest_path) {
  sqlite3* src = nullptr;
  sqlite3* dst = nullptr;
  struct Closer {
    sqlite3** db;
    ~Closer() { (void)sqlite3_close_v2(*db); }  // a null handle is a no-op
  } close_src{&src}, close_dst{&dst};
  // Read-write without CREATE: a read-only handle cannot open a WAL database
  // whose -shm no coordinator has made; nothing is written through it.
  int rc = sqlite3_open_v2(db_path.c_str(), &src, SQLITE_OPEN_READWRITE, nullptr);
  if (rc != SQLITE_OK) {
    return absl::InternalError(absl::StrCat(db_path, ": open: ", sqlite3_errmsg(src)));
  }
  (void)sqlite3_busy_timeout(src, kBusyTimeoutMs);
  const std::string part = dest_path + ".part";
  ::unlink(part.c_str());
  rc = sqlite3_open_v2(part.c_str(), &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  if (rc != SQLITE_OK) {
    return absl::InternalError(absl::StrCat(part, ": open: ", sqlite3_errmsg(dst)));
  }
  sqlite3_backup* backup = sqlite3_backup_init(dst, "main", src, "main");
  if (backup == nullptr) {
    return absl::InternalError(absl::StrCat(db_path, ": backup: ", sqlite3_errmsg(dst)));
  }
  // -1: every page in one step, i.e. one read snapshot. BUSY only while another
  // connection holds an exclusive lock (a checkpoint in rollback mode); the
  // busy timeout has already waited, so retry a bounded number of times.
  for (int tries = 0; tries < 20; ++tries) {
    rc = sqlite3_backup_step(backup, -1);
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
    sqlite3_sleep(100);
  }
  (void)sqlite3_backup_finish(backup);  // rc above carries the outcome
  if (rc != SQLITE_DONE) {
    return absl::InternalError(
        absl::StrCat(db_path, ": backup: ", sqlite3_errstr(rc), " (", sqlite3_errmsg(dst), ")"));
  }
  (void)sqlite3_close_v2(dst);
  dst = nullptr;
  ::chmod(part.c_str(), kPrivateFileMode);
  if (::rename(part.c_str(), dest_path.c_str()) != 0) return IoError(dest_path, "rename");
  return absl::OkStatus();
}

absl::StatusOr<std::map<std::string, FileDigest>> ReadManifest(const std::string& src) {
  const std::string path = (fs::path(src) / kBackupManifest).string();
  FdCloser fd{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (fd.fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        src, ": not a musafarm backup (no ", kBackupManifest,
        "; an interrupted backup has none): ", std::strerror(errno)));
  }
  std::string text;
  char buf[8192];
  ssize_t n;
  while ((n = ::read(fd.fd, buf, sizeof(buf))) > 0) text.append(buf, static_cast<size_t>(n));
  std::vector<std::string> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  if (lines.empty() || lines[0] != kBackupMagic) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ":1: expected \"", kBackupMagic, "\""));
  }
  std::map<std::string, FileDigest> files;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> f = absl::StrSplit(lines[i], absl::MaxSplits(' ', 2));
    FileDigest d;
    if (f.size() != 3 || f[0].size() != 64 || !absl::SimpleAtoi(f[1], &d.size) ||
        f[2].empty() || f[2][0] == '/' || absl::StrContains(f[2], "..")) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", i + 1, ": expected \"SHA256 SIZE RELATIVE-PATH\""));
    }
    d.sha256 = f[0];
    files[f[2]] = d;
  }
  if (files.count(kDatabase) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": lists no ", kDatabase));
  }
  return files;
}

}  // namespace

absl::Status BackupDataDir(const std::string& data_dir, const std::string& dest, std::ostream& out) {
  std::error_code ec;
  const std::string db_path = (fs::path(data_dir) / kDatabase).string();
  if (!fs::is_regular_file(db_path, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat("backup: no ", kDatabase, " in data dir '", data_dir, "'"));
  }
  if (fs::exists(dest, ec) && !(fs::is_directory(dest, ec) && fs::is_empty(dest, ec))) {
    return absl::InvalidArgumentError(
        absl::StrCat("backup: '", dest, "' exists and is not an empty directory"));
  }
  MF_RETURN_IF_ERROR(MakeDirs(dest));
  // The database first, then the files: see backup.h for why this order.
  const std::string db_copy = (fs::path(dest) / kDatabase).string();
  MF_RETURN_IF_ERROR(SnapshotDatabase(db_path, db_copy));
  std::string manifest = absl::StrCat(kBackupMagic, "\n");
  MF_ASSIGN_OR_RETURN(FileDigest db_digest, CopyAndHash(db_copy, ""));
  absl::StrAppend(&manifest, db_digest.sha256, " ", db_digest.size, " ", kDatabase, "\n");
  std::vector<std::string> files;
  for (const char* name : kCopiedFiles) {
    if (fs::is_regular_file(fs::path(data_dir) / name, ec)) files.push_back(name);
  }
  for (const char* dir : kCopiedDirs) {
    MF_ASSIGN_OR_RETURN(std::vector<std::string> under, FilesUnder(data_dir, dir));
    files.insert(files.end(), under.begin(), under.end());
  }
  uint64_t bytes = db_digest.size;
  for (const std::string& rel : files) {
    const fs::path to = fs::path(dest) / rel;
    MF_RETURN_IF_ERROR(MakeDirs(to.parent_path()));
    MF_ASSIGN_OR_RETURN(FileDigest d, CopyAndHash((fs::path(data_dir) / rel).string(), to.string()));
    absl::StrAppend(&manifest, d.sha256, " ", d.size, " ", rel, "\n");
    bytes += d.size;
  }
  MF_RETURN_IF_ERROR(WriteFileAtomically((fs::path(dest) / kBackupManifest).string(), manifest,
                                         kPrivateFileMode));
  out << "backup of " << data_dir << " in " << dest << ": " << kDatabase << " and "
      << files.size() << " file(s), " << bytes << " bytes\n";
  return absl::OkStatus();
}

absl::Status RestoreDataDir(const std::string& src, const std::string& data_dir, std::ostream& out) {
  MF_ASSIGN_OR_RETURN(auto files, ReadManifest(src));
  std::error_code ec;
  if (fs::exists(fs::path(data_dir) / kDatabase, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "restore: data dir '", data_dir, "' already holds ", kDatabase,
        "; restore into a new directory (and stop any coordinator using this one)"));
  }
  // Check every file before writing anything.
  for (const auto& [rel, want] : files) {
    absl::StatusOr<FileDigest> got = CopyAndHash((fs::path(src) / rel).string(), "");
    if (!got.ok()) {
      return absl::DataLossError(absl::StrCat("restore: ", rel, ": ", got.status().message()));
    }
    if (got->size != want.size || got->sha256 != want.sha256) {
      return absl::DataLossError(absl::StrCat("restore: ", src, "/", rel,
                                              " differs from the manifest (", got->size,
                                              " bytes, expected ", want.size, ")"));
    }
  }
  MF_RETURN_IF_ERROR(MakePrivateDir(data_dir));
  uint64_t bytes = 0;
  // The database last: a restore cut short leaves no musafarm.db, so running
  // it again is allowed and nothing mistakes the directory for a whole one.
  for (bool database : {false, true}) {
    for (const auto& [rel, want] : files) {
      if ((rel == kDatabase) != database) continue;
      const fs::path to = fs::path(data_dir) / rel;
      MF_RETURN_IF_ERROR(MakeDirs(to.parent_path()));
      MF_ASSIGN_OR_RETURN(FileDigest d, CopyAndHash((fs::path(src) / rel).string(), to.string()));
      bytes += d.size;
    }
  }
  out << "restored " << src << " into " << data_dir << ": " << files.size() << " file(s), "
      << bytes << " bytes\n";
  return absl::OkStatus();
}

std::string PostgresBackupAdvice(bool backup, const std::string& masked_url,
                                 const std::string& data_dir) {
  const std::string keep = absl::StrCat(
      "the secrets key (", data_dir, "/secrets.key, or the coordinator's --secrets-key-file or "
      "$MUSAFARM_SECRETS_KEY) and the TLS material (", data_dir,
      "/pki), which are not in the database");
  if (backup) {
    return absl::StrCat(
        "backup: this farm's state, logs, artifacts and blobs are in PostgreSQL at ", masked_url,
        ", not in the data dir; back that database up with PostgreSQL's tools (pg_dump -Fc, or "
        "your base backups and WAL archive), and keep with it ", keep);
  }
  return absl::StrCat("restore: this farm is in PostgreSQL at ", masked_url,
                      "; restore that database with pg_restore (into an empty database), and put "
                      "back ", keep);
}

}  // namespace musafarm::coordinator
