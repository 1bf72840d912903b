#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace musafarm {

// A stage's label requirement is "key=value" (the agent must have exactly that
// pair) or "key" (the agent must have that key, with any value or none).
bool LabelsSatisfy(const std::vector<std::string>& agent_labels,
                   const std::vector<std::string>& required);

// "gpu" of "gpu=mthreads" or of "gpu".
std::string LabelKey(const std::string& label);

// A label is key[=value]; the key is [A-Za-z0-9_.-/]+ and non-empty.
absl::Status ValidateLabel(const std::string& label);

}  // namespace musafarm
