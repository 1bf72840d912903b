#pragma once

#include <random>

#include "absl/time/time.h"

namespace musafarm {

// Exponential backoff with full jitter: Next() returns a uniform random delay in
// [0, min(max, initial * 2^n)]. Reset() after a connection proved healthy, so a
// fleet of agents reconnecting to a restarted coordinator spreads out.
// Not thread-safe.
class Backoff {
 public:
  Backoff(absl::Duration initial, absl::Duration max, uint64_t seed = std::random_device{}());
  absl::Duration Next();
  void Reset() { attempt_ = 0; }

 private:
  absl::Duration initial_;
  absl::Duration max_;
  int attempt_ = 0;
  std::mt19937_64 rng_;
};

}  // namespace musafarm
