#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>

namespace musafarm::coordinator {

// What a watcher tells WatchHub's flow control (Watcher::UnwrittenLogBytes,
// RequestDrainNotice): the log bytes it queued and has not written yet, and the
// drain notice the hub asked for. Each transport (WatchStream, the dashboard's
// event stream) keeps one. Not thread-safe: the watcher guards it with its own
// mutex and posts the notice, when one is due, after releasing it.
class LogBacklog {
 public:
  void Queued(uint64_t bytes) { unwritten_ += bytes; }
  // Bytes written (or dropped). True when the notice asked for is due now.
  bool Written(uint64_t bytes) {
    unwritten_ -= std::min(bytes, unwritten_);
    return Due();
  }
  // Asks for a notice once at most `at_most` bytes are unwritten. True when it
  // is due at once.
  bool Ask(uint64_t at_most) {
    notice_at_ = at_most;
    return Due();
  }
  uint64_t unwritten() const { return unwritten_; }

 private:
  bool Due() {
    if (!notice_at_ || unwritten_ > *notice_at_) return false;
    notice_at_.reset();
    return true;
  }

  uint64_t unwritten_ = 0;
  std::optional<uint64_t> notice_at_;
};

}  // namespace musafarm::coordinator
