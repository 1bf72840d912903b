#include "common/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace musafarm {
namespace {

std::string PartPath(const std::string& path) { return absl::StrCat(path, ".part"); }

absl::Status ErrnoError(const std::string& what, int e) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(e)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<AtomicFile>> AtomicFile::Create(const std::string& path,
                                                            int mode) {
  const std::string part = PartPath(path);
  const int fd =
      ::open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, static_cast<mode_t>(mode));
  if (fd < 0) return ErrnoError(part, errno);
  return std::unique_ptr<AtomicFile>(new AtomicFile(path, fd));
}

AtomicFile::~AtomicFile() { Abort(); }

void AtomicFile::Abort() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  ::unlink(PartPath(path_).c_str());
}

absl::Status AtomicFile::Append(absl::string_view data) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(PartPath(path_), ": closed"));
  while (!data.empty()) {
    const ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      Abort();
      return ErrnoError(PartPath(path_), e);
    }
    data.remove_prefix(static_cast<size_t>(n));
    size_ += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status AtomicFile::Commit() { return Finish(/*sync=*/true); }

absl::Status AtomicFile::CommitUnsynced() { return Finish(/*sync=*/false); }

absl::Status AtomicFile::Finish(bool sync) {
  if (fd_ < 0) return absl::FailedPreconditionError(absl::StrCat(PartPath(path_), ": closed"));
  const std::string part = PartPath(path_);
  // Synced before the rename, so that a crash cannot leave PATH short.
  if (sync && ::fsync(fd_) != 0) {
    const int e = errno;
    Abort();
    return ErrnoError(part, e);
  }
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {
    const int e = errno;
    ::unlink(part.c_str());
    return ErrnoError(part, e);
  }
  if (std::rename(part.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    ::unlink(part.c_str());
    return ErrnoError(absl::StrCat("rename ", part, " to ", path_), e);
  }
  if (!sync) return absl::OkStatus();
  std::string dir = std::filesystem::path(path_).parent_path().string();
  if (dir.empty()) dir = ".";
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return ErrnoError(dir, errno);
  absl::Status s = absl::OkStatus();
  if (::fsync(dfd) != 0) s = ErrnoError(absl::StrCat("fsync ", dir), errno);
  ::close(dfd);
  return s;
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view data, int mode) {
  MF_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> f, AtomicFile::Create(path, mode));
  MF_RETURN_IF_ERROR(f->Append(data));
  return f->Commit();
}

absl::Status WriteFileUnsynced(const std::string& path, absl::string_view data, int mode) {
  MF_ASSIGN_OR_RETURN(std::unique_ptr<AtomicFile> f, AtomicFile::Create(path, mode));
  MF_RETURN_IF_ERROR(f->Append(data));
  return f->CommitUnsynced();
}

}  // namespace musafarm
