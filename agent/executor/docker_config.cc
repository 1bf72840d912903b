#include "agent/executor/docker_config.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace musafarm::agent {

std::string RegistryOf(absl::string_view image) {
  const size_t slash = image.find('/');
  if (slash != absl::string_view::npos) {
    const absl::string_view first = image.substr(0, slash);
    if (absl::StrContains(first, '.') || absl::StrContains(first, ':') || first == "localhost") {
      return std::string(first);
    }
  }
  return "https://index.docker.io/v1/";
}

absl::StatusOr<std::unique_ptr<TempDockerConfig>> TempDockerConfig::Write(
    const std::string& parent, const std::string& tag, const std::vector<std::string>& images,
    absl::string_view user_password) {
  if (!absl::StrContains(user_password, ':')) {
    // The name of the secret is the caller's to add; the value is never shown.
    return absl::InvalidArgumentError("registry credentials must be 'user:password'");
  }
  const std::string dir = absl::StrCat(parent, "/.docker-config-", tag);
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  if (::mkdir(dir.c_str(), 0700) != 0 || ::chmod(dir.c_str(), 0700) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", dir, ": ", std::strerror(errno)));
  }
  std::unique_ptr<TempDockerConfig> config(new TempDockerConfig(dir));  // removes it on error
  std::set<std::string> registries;
  for (const std::string& image : images) registries.insert(RegistryOf(image));
  std::vector<std::string> auths;
  const std::string auth = absl::Base64Escape(user_password);
  for (const std::string& r : registries) {
    // Registry names are host[:port] or Docker Hub's URL: nothing to escape in JSON.
    auths.push_back(absl::StrCat("\"", r, "\": {\"auth\": \"", auth, "\"}"));
  }
  const std::string json =
      absl::StrCat("{\"auths\": {", absl::StrJoin(auths, ", "), "}}\n");
  const std::string file = dir + "/config.json";
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create ", file, ": ", std::strerror(errno)));
  }
  const bool ok = ::fchmod(fd, 0600) == 0 &&
                  ::write(fd, json.data(), json.size()) == static_cast<ssize_t>(json.size());
  const int err = errno;
  ::close(fd);
  if (!ok) {
    return absl::InternalError(absl::StrCat("cannot write ", file, ": ", std::strerror(err)));
  }
  return config;
}

TempDockerConfig::~TempDockerConfig() {
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace musafarm::agent
