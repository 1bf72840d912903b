#include "common/task_state.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace musafarm {

bool IsTerminal(v1::TaskState s) {
  switch (s) {
    case v1::TASK_STATE_SUCCEEDED:
    case v1::TASK_STATE_FAILED:
    case v1::TASK_STATE_SKIPPED:
    case v1::TASK_STATE_CANCELLED:
    case v1::TASK_STATE_TIMED_OUT:
      return true;
    default:
      return false;
  }
}

bool IsActive(v1::TaskState s) {
  return s == v1::TASK_STATE_ASSIGNED || s == v1::TASK_STATE_RUNNING;
}

std::string TaskStateName(v1::TaskState s) {
  constexpr absl::string_view kPrefix = "TASK_STATE_";
  const std::string& name = v1::TaskState_Name(s);  // empty for a value we do not know
  if (s == v1::TASK_STATE_UNSPECIFIED || !absl::StartsWith(name, kPrefix)) {
    return absl::StrCat("unknown(", static_cast<int>(s), ")");
  }
  return absl::AsciiStrToLower(absl::string_view(name).substr(kPrefix.size()));
}

}  // namespace musafarm
