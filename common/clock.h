#pragma once

#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace musafarm {

// Time source, injected so that timeout logic can be tested without sleeping.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  static RealClock* Get() {
    static RealClock clock;
    return &clock;
  }
};

inline int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }
inline int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

}  // namespace musafarm
