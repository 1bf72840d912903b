#include "common/duration_text.h"

#include <string>

#include "absl/strings/numbers.h"

namespace musafarm {

bool ParseDurationText(absl::string_view text, absl::Duration* out) {
  absl::Duration d;
  double days = 0;
  if (!text.empty() && text.back() == 'd' &&
      absl::SimpleAtod(text.substr(0, text.size() - 1), &days)) {
    d = absl::Hours(24) * days;
  } else if (!absl::ParseDuration(std::string(text), &d)) {
    return false;
  }
  if (d <= absl::ZeroDuration() || d == absl::InfiniteDuration()) return false;
  *out = d;
  return true;
}

}  // namespace musafarm
