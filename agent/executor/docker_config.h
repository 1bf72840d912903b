#pragma once

// Registry credentials for one docker_push attempt (DockerPushStage.registry_auth):
// a DOCKER_CONFIG of the attempt's own, never the agent's config.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm::agent {

// The registry an image reference names, as `docker login` keys it in
// config.json: the first path component when it has a '.' or ':' or is
// "localhost" (e.g. "registry.example.com:5000"); otherwise Docker Hub,
// "https://index.docker.io/v1/".
std::string RegistryOf(absl::string_view image);

// A directory <parent>/.docker-config-<tag> (0700) holding config.json (0600)
// with `user_password` ("user:password") as the auth of every registry
// `images` name. The destructor removes the directory. Pass path() as
// DOCKER_CONFIG to the one docker invocation that needs it.
class TempDockerConfig {
 public:
  static absl::StatusOr<std::unique_ptr<TempDockerConfig>> Write(
      const std::string& parent, const std::string& tag, const std::vector<std::string>& images,
      absl::string_view user_password);
  ~TempDockerConfig();
  TempDockerConfig(const TempDockerConfig&) = delete;
  TempDockerConfig& operator=(const TempDockerConfig&) = delete;

  const std::string& path() const { return dir_; }

 private:
  explicit TempDockerConfig(std::string dir) : dir_(std::move(dir)) {}
  std::string dir_;
};

}  // namespace musafarm::agent
