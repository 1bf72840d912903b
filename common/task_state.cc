#include "common/task_state.h"

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
  // A switch, not v1::TaskState_Name: the generated function builds the
  // descriptors of every .proto file on first use, which was 10% of the CPU
  // of `musafarm submit --watch` (the CLI registers them lazily, issue 19).
  // TaskStateTest.EveryValueIsNamedAsTheProtoNamesIt keeps this in step.
  switch (s) {
    case v1::TASK_STATE_PENDING:
      return "pending";
    case v1::TASK_STATE_QUEUED:
      return "queued";
    case v1::TASK_STATE_ASSIGNED:
      return "assigned";
    case v1::TASK_STATE_RUNNING:
      return "running";
    case v1::TASK_STATE_SUCCEEDED:
      return "succeeded";
    case v1::TASK_STATE_FAILED:
      return "failed";
    case v1::TASK_STATE_SKIPPED:
      return "skipped";
    case v1::TASK_STATE_CANCELLED:
      return "cancelled";
    case v1::TASK_STATE_TIMED_OUT:
      return "timed_out";
    default:
      return absl::StrCat("unknown(", static_cast<int>(s), ")");
  }
}

}  // namespace musafarm
