#include "agent/host/background_pruner.h"

#include <utility>

#include "common/logging.h"

namespace musafarm::agent {

BackgroundPruner::BackgroundPruner(ImagePruner* pruner, std::function<bool()> enough)
    : pruner_(pruner), enough_(std::move(enough)) {}

BackgroundPruner::~BackgroundPruner() {
  if (thread_.joinable()) thread_.join();
}

void BackgroundPruner::Request(std::set<std::string> keep) {
  bool expected = false;
  if (!running_.compare_exchange_strong(expected, true)) return;
  if (thread_.joinable()) thread_.join();  // finished: running_ was false
  thread_ = std::thread([this, keep = std::move(keep)] {
    absl::StatusOr<PruneReport> report = pruner_->Prune(keep, enough_);
    if (report.ok()) {
      GetLogger("agent")->info("low disk: pruned images: {}", report->Summary());
    } else {
      GetLogger("agent")->warn("low disk: cannot prune images: {}",
                               std::string(report.status().message()));
    }
    running_.store(false);
  });
}

}  // namespace musafarm::agent
