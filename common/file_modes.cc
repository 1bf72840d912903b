#include "common/file_modes.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"

namespace musafarm {

absl::Status MakePrivateDir(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create directory '", dir, "': ", ec.message()));
  }
  if (::chmod(dir.c_str(), kPrivateDirMode) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot make directory '", dir, "' private (0700): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status MakePrivateFile(const std::string& path) {
  if (::chmod(path.c_str(), kPrivateFileMode) != 0 && errno != ENOENT) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot make '", path, "' private (0600): ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace musafarm
