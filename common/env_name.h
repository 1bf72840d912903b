#pragma once

#include "absl/strings/string_view.h"

namespace musafarm {

// Whether `s` is an environment variable (or build argument) name:
// [A-Za-z_][A-Za-z0-9_]*. The pipeline checks the names it declares with it,
// the agent the secret names an assignment brings, so both agree.
bool IsEnvName(absl::string_view s);

}  // namespace musafarm
