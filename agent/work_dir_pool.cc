#include "agent/work_dir_pool.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace musafarm::agent {
namespace {

// True when the open directory `fd` holds nothing but "." and "..": one
// getdents64, no inode touched.
bool EmptyDir(int fd) {
  alignas(8) char buf[4096];
  const ssize_t n = ::getdents64(fd, buf, sizeof buf);
  if (n < 0) return false;
  for (ssize_t off = 0; off < n;) {
    const auto* d = reinterpret_cast<const struct dirent64*>(buf + off);
    if (std::strcmp(d->d_name, ".") != 0 && std::strcmp(d->d_name, "..") != 0) return false;
    off += d->d_reclen;
  }
  // A directory of entries that all fit in one read with only dots in it is
  // empty; one that did not fit has other entries.
  return static_cast<size_t>(n) < sizeof buf;
}

}  // namespace

WorkDirPool::WorkDirPool(std::string tasks_dir, size_t capacity)
    : tasks_dir_(std::move(tasks_dir)), capacity_(capacity) {}

bool WorkDirPool::Make(const std::string& path) {
  while (!free_.empty()) {
    std::string from = std::move(free_.back());
    free_.pop_back();
    // rename(2) over an empty directory of the same name replaces it; over a
    // full one it fails, and the caller's long way removes that leftover.
    if (::rename(from.c_str(), path.c_str()) == 0) {
      ++reused_;
      return true;
    }
    const int err = errno;
    if (err == EEXIST || err == ENOTEMPTY) {
      free_.push_back(std::move(from));  // `path` is a leftover with files: still good
      break;
    }
    ::rmdir(from.c_str());  // not to be trusted any more
    if (err != ENOENT) break;  // `from` vanished: try the next one
  }
  if (::mkdir(path.c_str(), 0777) != 0) return false;
  ++made_;
  if (!known_) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) {
      known_ = true;
      uid_ = st.st_uid;
      gid_ = st.st_gid;
      mode_ = st.st_mode;
    }
  }
  return true;
}

bool WorkDirPool::Keep(const std::string& path) {
  if (!known_ || free_.size() >= capacity_) return false;
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  // A task may have changed its directory's mode (or, as root, its owner):
  // the next one starts in a directory as mkdir makes it, or in a new one.
  const bool as_made = ::fstat(fd, &st) == 0 && st.st_uid == uid_ && st.st_gid == gid_ &&
                       st.st_mode == mode_ && EmptyDir(fd);
  ::close(fd);
  if (!as_made) return false;
  std::string to = absl::StrCat(tasks_dir_, "/.free-", next_name_++);
  if (::rename(path.c_str(), to.c_str()) != 0) return false;
  free_.push_back(std::move(to));
  return true;
}

}  // namespace musafarm::agent
