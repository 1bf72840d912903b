#include "agent/log_spool.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace musafarm::agent {
namespace {

constexpr size_t kCopyChunk = 1 << 20;

absl::Status Errno(const std::string& what, const std::string& path, int err) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(err)));
}

bool Truncate(int fd, uint64_t size) {
  return fd >= 0 && ::ftruncate(fd, static_cast<off_t>(size)) == 0;
}

}  // namespace

void SpoolBudget::Add(int64_t delta) {
  absl::MutexLock lock(&mu_);
  used_ += delta;
}

bool SpoolBudget::WaitForRoom(absl::Duration timeout) {
  if (max_ == 0) return true;
  absl::MutexLock lock(&mu_);
  auto room = [this]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return used_ < static_cast<int64_t>(max_); };
  return mu_.AwaitWithTimeout(absl::Condition(&room), timeout);
}

bool SpoolBudget::Full() const {
  absl::MutexLock lock(&mu_);
  return max_ != 0 && used_ >= static_cast<int64_t>(max_);
}

int64_t SpoolBudget::used() const {
  absl::MutexLock lock(&mu_);
  return used_;
}

absl::StatusOr<std::unique_ptr<LogSpool>> LogSpool::Create(const std::string& path) {
  // A directory that cannot hold the file fails the attempt before it runs,
  // as an eager create did; a stat allocates no inode.
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return Errno("cannot create", path, errno);
  if (!S_ISDIR(st.st_mode)) return Errno("cannot create", path, ENOTDIR);
  return std::unique_ptr<LogSpool>(new LogSpool(-1, path));
}

absl::StatusOr<std::unique_ptr<LogSpool>> LogSpool::Open(const std::string& path, uint64_t total) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  // An empty log's spool never made its file.
  if (fd < 0 && errno == ENOENT && total == 0) {
    return std::unique_ptr<LogSpool>(new LogSpool(-1, path));
  }
  if (fd < 0) return Errno("cannot open", path, errno);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Errno("cannot stat", path, err);
  }
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  if (size > total) {
    ::close(fd);
    return absl::DataLossError(
        absl::StrCat(path, " holds ", size, " bytes, more than the log's ", total));
  }
  std::unique_ptr<LogSpool> spool(new LogSpool(fd, path));
  spool->file_start_ = total - size;
  spool->base_ = total - size;
  spool->total_ = total;
  return spool;
}

LogSpool::~LogSpool() {
  if (fd_ < 0) return;
  ::close(fd_);
  if (!keep_) ::unlink(path_.c_str());
}

absl::Status LogSpool::Sync() {
  if (fd_ >= 0 && ::fdatasync(fd_) != 0) return Errno("cannot sync", path_, errno);
  return absl::OkStatus();
}

absl::Status LogSpool::Append(absl::string_view data) {
  if (data.empty()) return absl::OkStatus();
  if (fd_ < 0) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd_ < 0) return Errno("cannot create", path_, errno);
  }
  const uint64_t at = total_ - file_start_;
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n =
        ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(at + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = n < 0 ? errno : ENOSPC;
      // All or nothing: a partly written tail is cut off again.
      // Best effort: what lies past `total` is never read, and the next
      // append overwrites it.
      Truncate(fd_, at);
      return Errno("cannot write", path_, err);
    }
    done += static_cast<size_t>(n);
  }
  total_ += data.size();
  if (data.size() >= kTailBytes) {
    tail_.assign(data.data() + data.size() - kTailBytes, kTailBytes);
  } else {
    // Trimmed back to kTailBytes only past twice that: each byte is moved
    // about once.
    if (tail_.size() + data.size() > 2 * kTailBytes) {
      tail_.erase(0, tail_.size() - (kTailBytes - data.size()));
    }
    tail_.append(data.data(), data.size());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> LogSpool::Read(uint64_t offset, size_t max) const {
  if (offset < base_ || offset > total_) {
    return absl::OutOfRangeError(
        absl::StrCat("offset ", offset, " is outside [", base_, ", ", total_, ")"));
  }
  const size_t want = static_cast<size_t>(std::min<uint64_t>(max, total_ - offset));
  const uint64_t tail_start = total_ - tail_.size();
  if (offset >= tail_start) {
    return tail_.substr(static_cast<size_t>(offset - tail_start), want);
  }
  std::string out(want, '\0');
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::pread(fd_, out.data() + done, out.size() - done,
                              static_cast<off_t>(offset - file_start_ + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Errno("cannot read", path_, errno);
    if (n == 0) return absl::DataLossError(absl::StrCat(path_, " is shorter than expected"));
    done += static_cast<size_t>(n);
  }
  return out;
}

uint64_t LogSpool::Ack(uint64_t offset) {
  if (offset <= base_) return 0;
  const uint64_t to = std::min(offset, total_);
  const uint64_t dropped = to - base_;
  base_ = to;
  Compact();
  return dropped;
}

void LogSpool::Compact() {
  const uint64_t prefix = base_ - file_start_;
  const uint64_t rest = total_ - base_;
  if (rest == 0) {
    if (prefix > 0 && Truncate(fd_, 0)) file_start_ = base_;
    return;
  }
  if (prefix < kCompactMin || prefix < rest) return;
  // prefix >= rest: the destination [0, rest) ends before the source
  // [prefix, prefix + rest) starts, so a failure midway loses nothing.
  std::string buf(static_cast<size_t>(std::min<uint64_t>(kCopyChunk, rest)), '\0');
  for (uint64_t done = 0; done < rest;) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), rest - done));
    const ssize_t r = ::pread(fd_, buf.data(), want, static_cast<off_t>(prefix + done));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    size_t written = 0;
    while (written < static_cast<size_t>(r)) {
      const ssize_t w = ::pwrite(fd_, buf.data() + written, static_cast<size_t>(r) - written,
                                 static_cast<off_t>(done + written));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return;
      written += static_cast<size_t>(w);
    }
    done += static_cast<uint64_t>(r);
  }
  // The moved copy is complete. Should the old tail stay (truncate failed),
  // the file is only longer than needed: appends overwrite it.
  Truncate(fd_, rest);
  file_start_ = base_;
}

}  // namespace musafarm::agent
