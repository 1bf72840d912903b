#pragma once

#include <cstdint>
#include <string>

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
// "2026-12-01T10:00:00Z": how messages and logs show a certificate's or a
// token's expiry (whole seconds, UTC).
inline std::string FormatUtc(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}
inline int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

}  // namespace musafarm
