#pragma once

#include <string>
#include <utility>
#include <vector>

#include "coordinator/user_api.h"

namespace musafarm::testing {

// Records what the core sends to one watcher. Not thread-safe: tests drive the
// core from one thread.
class RecordingWatcher final : public coordinator::Watcher {
 public:
  void Send(v1::WatchEvent e) override { events.push_back(std::move(e)); }
  void Finish(const absl::Status& s) override {
    finished = s;
    done = true;
  }
  // Every log byte received, in order.
  std::string Log() const {
    std::string out;
    for (const auto& e : events) {
      if (e.has_log()) out += e.log().data();
    }
    return out;
  }

  std::vector<v1::WatchEvent> events;
  absl::Status finished;
  bool done = false;
};

}  // namespace musafarm::testing
