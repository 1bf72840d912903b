#include "coordinator/file_log_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/file_modes.h"

namespace musafarm::coordinator {
namespace {
absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat("log store: ", what, " ", path, ": ", std::strerror(errno)));
}
}  // namespace

FileLogStore::FileLogStore(std::string root) : root_(std::move(root)) {}

FileLogStore::~FileLogStore() {
  for (auto& [key, log] : open_) ::close(log.fd);
}

std::string FileLogStore::PathOf(const std::string& task_id, uint64_t attempt_id) const {
  return absl::StrCat(root_, "/", task_id, "/", attempt_id, ".log");
}

std::string FileLogStore::ArtifactPath(const std::string& task_id, uint64_t attempt_id,
                                       const std::string& name) const {
  return absl::StrCat(root_, "/", task_id, "/", attempt_id, ".artifacts/", name);
}

absl::StatusOr<FileLogStore::OpenLog*> FileLogStore::Open(const std::string& path) {
  auto it = open_.find(path);
  if (it != open_.end()) return &it->second;
  // Task logs are the tasks' output: their owner's alone, whatever the umask.
  if (absl::Status s = MakePrivateDir(std::filesystem::path(path).parent_path()); !s.ok()) {
    return absl::InternalError(absl::StrCat("log store: mkdir for ", path, ": ", s.message()));
  }
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, kPrivateFileMode);
  if (fd < 0) return Errno("open", path);
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    return Errno("stat", path);
  }
  OpenLog& log = open_[path];
  log.fd = fd;
  log.size = static_cast<uint64_t>(st.st_size);
  return &log;
}

absl::StatusOr<uint64_t> FileLogStore::Append(const std::string& task_id, uint64_t attempt_id,
                                              uint64_t offset, absl::string_view data) {
  return AppendAt(PathOf(task_id, attempt_id), offset, data);
}

absl::StatusOr<uint64_t> FileLogStore::AppendArtifact(const std::string& task_id,
                                                      uint64_t attempt_id, const std::string& name,
                                                      uint64_t offset, absl::string_view data) {
  if (!ValidArtifactName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("bad artifact name '", name, "'"));
  }
  return AppendAt(ArtifactPath(task_id, attempt_id, name), offset, data);
}

absl::StatusOr<uint64_t> FileLogStore::AppendAt(const std::string& path, uint64_t offset,
                                                absl::string_view data) {
  absl::StatusOr<OpenLog*> opened = Open(path);
  if (!opened.ok()) return opened.status();
  OpenLog& log = **opened;
  if (offset > log.size) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, ": chunk at ", offset, " leaves a gap after ", log.size));
  }
  const uint64_t skip = log.size - offset;  // already stored: a resend
  if (skip >= data.size()) return log.size;
  data.remove_prefix(skip);
  while (!data.empty()) {
    ssize_t n = ::pwrite(log.fd, data.data(), data.size(), static_cast<off_t>(log.size));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write", path);
    }
    log.size += static_cast<uint64_t>(n);
    data.remove_prefix(static_cast<size_t>(n));
  }
  return log.size;
}

uint64_t FileLogStore::Size(const std::string& task_id, uint64_t attempt_id) {
  return SizeAt(PathOf(task_id, attempt_id));
}

uint64_t FileLogStore::ArtifactSize(const std::string& task_id, uint64_t attempt_id,
                                    const std::string& name) {
  if (!ValidArtifactName(name)) return 0;
  return SizeAt(ArtifactPath(task_id, attempt_id, name));
}

uint64_t FileLogStore::SizeAt(const std::string& path) {
  auto it = open_.find(path);
  if (it != open_.end()) return it->second.size;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_size);
}

absl::StatusOr<std::string> FileLogStore::Read(const std::string& task_id, uint64_t attempt_id,
                                               uint64_t offset, uint64_t limit) {
  return ReadAt(PathOf(task_id, attempt_id), offset, limit);
}

absl::StatusOr<std::string> FileLogStore::ReadArtifact(const std::string& task_id,
                                                       uint64_t attempt_id, const std::string& name,
                                                       uint64_t offset, uint64_t limit) {
  if (!ValidArtifactName(name)) {
    return absl::InvalidArgumentError(absl::StrCat("bad artifact name '", name, "'"));
  }
  return ReadAt(ArtifactPath(task_id, attempt_id, name), offset, limit);
}

absl::StatusOr<std::string> FileLogStore::ReadAt(const std::string& path, uint64_t offset,
                                                 uint64_t limit) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::string();
    return Errno("open", path);
  }
  std::string out;
  out.resize(static_cast<size_t>(limit));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::pread(fd, out.data() + got, out.size() - got, static_cast<off_t>(offset + got));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return Errno("read", path);
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  out.resize(got);
  return out;
}

void FileLogStore::Close(const std::string& task_id, uint64_t attempt_id) {
  CloseAt(PathOf(task_id, attempt_id));
}

void FileLogStore::CloseAttempt(const std::string& task_id, uint64_t attempt_id) {
  CloseAt(PathOf(task_id, attempt_id));
  const std::string prefix = ArtifactPath(task_id, attempt_id, "");
  for (auto it = open_.lower_bound(prefix);
       it != open_.end() && it->first.compare(0, prefix.size(), prefix) == 0;) {
    const std::string path = (it++)->first;
    CloseAt(path);
  }
}

void FileLogStore::CloseAt(const std::string& path) {
  auto it = open_.find(path);
  if (it == open_.end()) return;
  // The attempt has ended: make its log durable against power loss too.
  ::fsync(it->second.fd);
  ::close(it->second.fd);
  open_.erase(it);
}

std::vector<std::string> FileLogStore::TaskEntries(const std::string& task_id) const {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& entry :
       std::filesystem::directory_iterator(absl::StrCat(root_, "/", task_id), ec)) {
    const std::string name = entry.path().filename().string();
    absl::string_view stem = name;
    if (!absl::ConsumeSuffix(&stem, ".log") && !absl::ConsumeSuffix(&stem, ".artifacts")) continue;
    uint64_t attempt = 0;
    if (absl::SimpleAtoi(stem, &attempt)) out.push_back(entry.path().string());
  }
  return out;
}

uint64_t FileLogStore::TaskBytes(const std::string& task_id) {
  uint64_t total = 0;
  for (const std::string& path : TaskEntries(task_id)) {
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) {
      for (const auto& f : std::filesystem::directory_iterator(path, ec)) total += SizeAt(f.path());
    } else {
      total += SizeAt(path);
    }
  }
  return total;
}

absl::Status FileLogStore::RemoveTask(const std::string& task_id) {
  const std::string dir = absl::StrCat(root_, "/", task_id);
  for (auto it = open_.lower_bound(dir + "/");
       it != open_.end() && absl::StartsWith(it->first, dir + "/");) {
    const std::string path = (it++)->first;
    CloseAt(path);
  }
  for (const std::string& path : TaskEntries(task_id)) {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
    if (ec) return absl::InternalError(absl::StrCat("log store: remove ", path, ": ", ec.message()));
  }
  // The task's directories, while empty, up to the root ("7/dev-3.8/base",
  // "7/dev-3.8", "7"): rmdir refuses a directory another task still uses.
  for (std::filesystem::path p = dir; p.string().size() > root_.size(); p = p.parent_path()) {
    if (::rmdir(p.c_str()) != 0) break;
  }
  return absl::OkStatus();
}

std::unique_ptr<LogStore> OpenFileLogStore(std::string root) {
  return std::make_unique<FileLogStore>(std::move(root));
}

}  // namespace musafarm::coordinator
