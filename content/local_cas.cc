#include "content/local_cas.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "content/digest.h"
#include "content/tree.h"

namespace musafarm::content {
namespace {

namespace fs = std::filesystem;

absl::Status ErrnoError(const std::string& path, int e) {
  return absl::InternalError(absl::StrCat(path, ": ", std::strerror(e)));
}

// A name for a temporary file no other thread or process of the agent picks.
std::string TempName(const std::string& dir, const std::string& sha) {
  static std::atomic<uint64_t> counter{0};
  return absl::StrCat(dir, "/tmp/", sha, ".", ::getpid(), ".", counter.fetch_add(1));
}

absl::Status CopyFile(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::none, ec);
  if (ec) return absl::InternalError(absl::StrCat(from, " -> ", to, ": ", ec.message()));
  return absl::OkStatus();
}

// Marks a cached file as just used, for eviction (least recently used first).
void Touch(const std::string& path) { ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0); }

}  // namespace

LocalCas::LocalCas(std::string dir, int64_t max_bytes) : dir_(std::move(dir)), max_bytes_(max_bytes) {
  std::error_code ec;
  fs::create_directories(dir_ + "/tmp", ec);
}

std::string LocalCas::PathOf(const std::string& sha256, bool executable) const {
  return absl::StrCat(dir_, "/", sha256.substr(0, 2), "/", sha256, executable ? ".x" : "");
}

absl::StatusOr<std::string> LocalCas::Ensure(const v1::Digest& digest, bool executable,
                                             BlobSource& source, MaterializeStats* stats) {
  const std::string path = PathOf(digest.sha256(), executable);
  if (::access(path.c_str(), F_OK) == 0) {
    Touch(path);
    return path;
  }
  std::error_code ec;
  fs::create_directories(fs::path(path).parent_path(), ec);
  const std::string tmp = TempName(dir_, digest.sha256());
  const std::string plain = PathOf(digest.sha256(), false);
  if (executable && ::access(plain.c_str(), F_OK) == 0) {
    // The same bytes cached without the bit: a copy, since a hard link would
    // share one mode between both.
    MF_RETURN_IF_ERROR(CopyFile(plain, tmp));
  } else {
    MF_RETURN_IF_ERROR(source.FetchToFile(digest, tmp));
    ++stats->blobs_fetched;
    stats->bytes_fetched += digest.size_bytes();
  }
  // link, not rename: a rename would replace the file another thread (a task
  // starting at the same time) just found in the cache, and its own link()
  // of that now nameless inode fails with ENOENT. The first name in stays;
  // a later fetch of the same bytes is dropped.
  if (::chmod(tmp.c_str(), executable ? 0555 : 0444) != 0 ||
      (::link(tmp.c_str(), path.c_str()) != 0 && errno != EEXIST)) {
    const absl::Status s = ErrnoError(tmp, errno);
    ::unlink(tmp.c_str());
    return s;
  }
  ::unlink(tmp.c_str());
  return path;
}

absl::StatusOr<MaterializeStats> LocalCas::Materialize(const v1::Digest& root, BlobSource& source,
                                                       const std::string& dest) {
  absl::StatusOr<MaterializeStats> made;
  {
    absl::ReaderMutexLock lock(&mu_);
    made = MaterializeLocked(root, source, dest);
  }
  Evict();
  return made;
}

int64_t LocalCas::evicted() {
  absl::MutexLock lock(&mu_);
  return evicted_;
}

absl::StatusOr<MaterializeStats> LocalCas::MaterializeLocked(const v1::Digest& root,
                                                             BlobSource& source,
                                                             const std::string& dest) {
  MaterializeStats stats;
  if (::mkdir(dest.c_str(), 0755) != 0) return ErrnoError(dest, errno);
  DirectoryFetcher fetch = [&](const v1::Digest& d) -> absl::StatusOr<std::string> {
    // Directory blobs are cached too: a second materialization reads no network.
    MF_ASSIGN_OR_RETURN(std::string path, Ensure(d, false, source, &stats));
    std::string bytes;
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    if (ec) return absl::InternalError(absl::StrCat(path, ": ", ec.message()));
    bytes.resize(size);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoError(path, errno);
    const ssize_t n = ::read(fd, bytes.data(), bytes.size());
    ::close(fd);
    if (n != static_cast<ssize_t>(bytes.size())) return ErrnoError(path, EIO);
    return bytes;
  };
  TreeVisitor visit;
  visit.directory = [&](const std::string& rel, const v1::Digest&,
                        const v1::Directory& dir) -> absl::Status {
    const std::string here = rel.empty() ? dest : absl::StrCat(dest, "/", rel);
    if (!rel.empty() && ::mkdir(here.c_str(), 0755) != 0) return ErrnoError(here, errno);
    for (const v1::FileNode& f : dir.files()) {
      MF_ASSIGN_OR_RETURN(std::string cached, Ensure(f.digest(), f.executable(), source, &stats));
      const std::string target = absl::StrCat(here, "/", f.name());
      if (::link(cached.c_str(), target.c_str()) != 0) {
        if (errno != EXDEV) return ErrnoError(target, errno);
        MF_RETURN_IF_ERROR(CopyFile(cached, target));
      }
      ++stats.files;
    }
    for (const v1::SymlinkNode& s : dir.symlinks()) {
      const std::string target = absl::StrCat(here, "/", s.name());
      if (::symlink(s.target().c_str(), target.c_str()) != 0) return ErrnoError(target, errno);
    }
    return absl::OkStatus();
  };
  absl::StatusOr<TreeStats> walked = WalkTree(root, fetch, visit);
  if (!walked.ok()) return walked.status();
  return stats;
}

int64_t LocalCas::CachedBytes() {
  int64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir_, ec)) {
    if (e.is_regular_file(ec)) total += static_cast<int64_t>(e.file_size(ec));
  }
  return total;
}

void LocalCas::Evict() {
  if (max_bytes_ <= 0) return;
  absl::MutexLock lock(&mu_);
  std::multimap<int64_t, std::pair<std::string, int64_t>> by_age;  // mtime -> path, size
  int64_t total = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir_, ec)) {
    if (!e.is_regular_file(ec) || e.path().parent_path().filename() == "tmp") continue;
    struct stat st;
    if (::stat(e.path().c_str(), &st) != 0) continue;
    total += st.st_size;
    by_age.emplace(static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec,
                   std::make_pair(e.path().string(), static_cast<int64_t>(st.st_size)));
  }
  for (auto it = by_age.begin(); it != by_age.end() && total > max_bytes_; ++it) {
    // Trees already made hold their own links: only the cache's name goes.
    if (::unlink(it->second.first.c_str()) == 0) {
      total -= it->second.second;
      ++evicted_;
    }
  }
}

}  // namespace musafarm::content
