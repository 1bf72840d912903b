#include "coordinator/heartbeat_pace.h"

#include <algorithm>

namespace musafarm::coordinator {

HeartbeatPace::HeartbeatPace(Options options)
    : options_(options), current_(options.base_interval) {}

absl::Duration HeartbeatPace::Needed(size_t agents) const {
  if (options_.max_rate <= 0) return options_.base_interval;
  const absl::Duration spread =
      absl::Ceil(absl::Seconds(static_cast<double>(agents) / options_.max_rate),
                 absl::Milliseconds(100));
  return std::max(options_.base_interval, spread);
}

HeartbeatPace::Decision HeartbeatPace::OnRegister(size_t connected) {
  const absl::Duration ahead = Needed(connected + connected / 4);
  Decision d;
  if (Needed(connected) > current_) {
    current_ = ahead;
    d.tell_everyone = true;
  } else if (ahead * 2 < current_) {
    current_ = ahead;
  }
  d.interval = current_;
  return d;
}

absl::Duration HeartbeatPace::SilenceAllowed(absl::Duration interval) const {
  const absl::Duration grace = std::max(absl::ZeroDuration(), options_.timeout - options_.base_interval);
  return std::max(options_.timeout, interval + grace);
}

}  // namespace musafarm::coordinator
