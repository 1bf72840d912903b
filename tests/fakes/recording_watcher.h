#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/user_api.h"

namespace musafarm::testing {

// Records what the core sends to one watcher. Not thread-safe: tests drive the
// core from one thread.
class RecordingWatcher final : public coordinator::Watcher {
 public:
  void Send(v1::WatchEvent e) override {
    if (count_unwritten && e.has_log()) {
      unwritten += e.log().data().size();
      max_unwritten = std::max(max_unwritten, unwritten);
    }
    events.push_back(std::move(e));
  }
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

  // Flow control (off unless count_unwritten): log bytes count as unwritten
  // until the test says they were written (unwritten = 0).
  uint64_t UnwrittenLogBytes() const override { return unwritten; }
  void RequestDrainNotice(uint64_t at_most) override { drain_requests.push_back(at_most); }

  std::vector<v1::WatchEvent> events;
  absl::Status finished;
  bool done = false;
  bool count_unwritten = false;
  uint64_t unwritten = 0;
  uint64_t max_unwritten = 0;
  std::vector<uint64_t> drain_requests;
};

}  // namespace musafarm::testing
