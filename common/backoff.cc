#include "common/backoff.h"

#include <algorithm>

namespace musafarm {

Backoff::Backoff(absl::Duration initial, absl::Duration max, uint64_t seed)
    : initial_(initial), max_(max), rng_(seed) {}

absl::Duration Backoff::Next() {
  absl::Duration ceiling = initial_;
  for (int i = 0; i < attempt_ && ceiling < max_; ++i) ceiling *= 2;
  ceiling = std::min(ceiling, max_);
  if (attempt_ < 62) ++attempt_;
  std::uniform_int_distribution<int64_t> dist(0, absl::ToInt64Microseconds(ceiling));
  // Never zero: a tight reconnect loop helps nobody.
  return std::max(absl::Microseconds(dist(rng_)), absl::Milliseconds(50));
}

}  // namespace musafarm
