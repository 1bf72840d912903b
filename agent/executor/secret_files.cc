#include "agent/executor/secret_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace musafarm::agent {
namespace {

std::string Prefix(const std::string& farm) { return absl::StrCat("musafarm-", farm, "-secrets-"); }

absl::Status WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return absl::InternalError(std::strerror(errno));
    }
    done += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

std::string SecretFiles::DefaultRoot() {
  struct stat st;
  if (::stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && ::access("/dev/shm", W_OK) == 0) {
    return "/dev/shm";
  }
  std::error_code ec;
  std::string tmp = std::filesystem::temp_directory_path(ec).string();
  return ec ? "/tmp" : tmp;
}

absl::Status SecretFiles::Write(const std::string& root_in, const std::string& farm,
                                uint64_t attempt_id, const EnvMap& secrets) {
  Remove();
  const std::string root = root_in.empty() ? DefaultRoot() : root_in;
  const std::string dir = absl::StrCat(root, "/", Prefix(farm), attempt_id);
  // A leftover of the same attempt (an agent killed and restarted) goes first:
  // mkdir must create the directory so that its mode is ours.
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (::mkdir(dir.c_str(), 0700) != 0) {
    return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", std::strerror(errno)));
  }
  dir_ = dir;
  for (const auto& [name, value] : secrets) {
    const std::string path = absl::StrCat(dir, "/", absl::AsciiStrToLower(name));
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0444);
    if (fd < 0) {
      const std::string why = std::strerror(errno);
      Remove();
      return absl::InternalError(absl::StrCat("create ", path, ": ", why));
    }
    absl::Status written = WriteAll(fd, value);
    ::close(fd);
    if (!written.ok()) {
      Remove();
      return absl::InternalError(absl::StrCat("write ", path, ": ", written.message()));
    }
    paths_[name] = path;
  }
  return absl::OkStatus();
}

void SecretFiles::Remove() {
  if (dir_.empty()) return;
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
  dir_.clear();
  paths_.clear();
}

std::string SecretFiles::OwnerFor(const std::string& farm, const std::string& agent,
                                  const std::string& work_dir) {
  std::error_code ec;
  std::string abs = std::filesystem::weakly_canonical(work_dir, ec).string();
  if (ec || abs.empty()) abs = work_dir;
  // FNV-1a: stable across builds and runs, which std::hash need not be.
  uint32_t h = 2166136261u;
  for (const unsigned char c : abs) {
    h ^= c;
    h *= 16777619u;
  }
  return absl::StrCat(farm, "-", agent, "-", absl::Hex(h, absl::kZeroPad8));
}

int SecretFiles::RemoveStale(const std::string& root_in, const std::string& farm) {
  const std::string root = root_in.empty() ? DefaultRoot() : root_in;
  const std::string prefix = Prefix(farm);
  int removed = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(root, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (!absl::StartsWith(name, prefix)) continue;
    std::error_code rm;
    std::filesystem::remove_all(it->path(), rm);
    if (!rm) ++removed;
  }
  return removed;
}

}  // namespace musafarm::agent
