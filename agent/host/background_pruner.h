#pragma once

#include <atomic>
#include <functional>
#include <set>
#include <string>
#include <thread>

#include "agent/host/image_pruner.h"

namespace musafarm::agent {

// Runs ImagePruner::Prune off the agent's loop (it runs docker and may take
// minutes): one prune at a time; a request while one runs is dropped, since
// the agent asks again at its next disk measurement while space stays low.
class BackgroundPruner {
 public:
  // `enough`: whether free space is back above the threshold.
  BackgroundPruner(ImagePruner* pruner, std::function<bool()> enough);
  ~BackgroundPruner();  // waits for a running prune
  BackgroundPruner(const BackgroundPruner&) = delete;
  BackgroundPruner& operator=(const BackgroundPruner&) = delete;

  // Prunes, keeping `keep` (images the farm's unfinished jobs and this agent's
  // attempts use), unless a prune is already running. Returns at once.
  void Request(std::set<std::string> keep);
  bool running() const { return running_.load(); }

 private:
  ImagePruner* const pruner_;
  const std::function<bool()> enough_;
  std::atomic<bool> running_{false};
  std::thread thread_;  // the last prune; joined before the next and at the end
};

}  // namespace musafarm::agent
