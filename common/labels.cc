#include "common/labels.h"

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace musafarm {

std::string LabelKey(const std::string& label) { return label.substr(0, label.find('=')); }

bool LabelsSatisfy(const std::vector<std::string>& agent_labels,
                   const std::vector<std::string>& required) {
  for (const std::string& want : required) {
    const bool pair = want.find('=') != std::string::npos;
    bool found = false;
    for (const std::string& have : agent_labels) {
      if (pair ? have == want : LabelKey(have) == want) {
        found = true;
        break;
      }
    }
    if (!found) return false;
  }
  return true;
}

absl::Status ValidateLabel(const std::string& label) {
  const std::string key = LabelKey(label);
  if (key.empty())
    return absl::InvalidArgumentError(absl::StrCat("label '", label, "' has an empty key"));
  for (char c : key) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.' &&
        c != '/') {
      return absl::InvalidArgumentError(
          absl::StrCat("label '", label, "': key may hold only letters, digits and _ - . /"));
    }
  }
  return absl::OkStatus();
}

}  // namespace musafarm
