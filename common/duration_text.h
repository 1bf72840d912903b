#pragma once

// Durations as operators type them on command lines: absl's syntax ("90m",
// "1h30m", "45s") plus whole or fractional days ("90d", "1.5d"), which
// token lifetimes and audit windows are usually given in.

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace musafarm {

// False (leaving *out alone) when `text` is neither form or not positive.
bool ParseDurationText(absl::string_view text, absl::Duration* out);

}  // namespace musafarm
