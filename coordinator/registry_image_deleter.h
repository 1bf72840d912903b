#pragma once

#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/retention_hooks.h"

namespace musafarm::coordinator {

// Deletes image tags from the farm's registry through the Docker Registry
// HTTP API v2 (Debian's docker-registry, with `delete: enabled: true`, as
// scripts/docker/registry.sh configures it), on one worker thread of its own:
// HTTP never runs on the core loop. The coordinator deletes rather than the
// agents: the tags are the farm's, the coordinator knows when the last job
// naming one is gone, and no agent need be connected for it to happen.
class RegistryImageDeleter final : public ImageDeleter {
 public:
  // `post` runs a function on the core loop (EventLoop::Post).
  using Post = std::function<void(std::function<void()>)>;
  explicit RegistryImageDeleter(Post post);
  // Finishes the batch in hand (each request has a timeout) and joins the
  // worker; no `done` is posted after it returns.
  ~RegistryImageDeleter() override;

  void Delete(std::vector<std::string> images,
              std::function<void(std::vector<std::string> gone)> done) override;

  // Deletes one "host:port/name:tag" over plain HTTP (the farm registry is on
  // a trusted network; loopback in the tests): resolves the tag's manifest
  // digest and deletes that manifest unless another tag of the repository
  // points at it too (it would go with it). OK when the tag is gone or was
  // left for that reason (`note` says which); an error when the registry
  // could not be asked or refused.
  static absl::Status DeleteOne(const std::string& image, std::string* note);

 private:
  struct Batch {
    std::vector<std::string> images;
    std::function<void(std::vector<std::string>)> done;
  };
  void Run();
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stopping_ || !queue_.empty(); }

  const Post post_;
  mutable absl::Mutex mu_;
  std::deque<Batch> queue_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread worker_;
};

}  // namespace musafarm::coordinator
