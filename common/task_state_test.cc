#include "common/task_state.h"

#include "gtest/gtest.h"

namespace musafarm {
namespace {

TEST(TaskStateTest, TerminalAndActiveSplitEveryState) {
  for (int i = v1::TaskState_MIN; i <= v1::TaskState_MAX; ++i) {
    const auto s = static_cast<v1::TaskState>(i);
    const bool terminal = s == v1::TASK_STATE_SUCCEEDED || s == v1::TASK_STATE_FAILED ||
                          s == v1::TASK_STATE_SKIPPED || s == v1::TASK_STATE_CANCELLED ||
                          s == v1::TASK_STATE_TIMED_OUT;
    EXPECT_EQ(IsTerminal(s), terminal) << v1::TaskState_Name(s);
    EXPECT_EQ(IsActive(s), s == v1::TASK_STATE_ASSIGNED || s == v1::TASK_STATE_RUNNING)
        << v1::TaskState_Name(s);
    EXPECT_FALSE(IsTerminal(s) && IsActive(s));
  }
}

TEST(TaskStateTest, NamesDropThePrefix) {
  EXPECT_EQ(TaskStateName(v1::TASK_STATE_QUEUED), "queued");
  EXPECT_EQ(TaskStateName(v1::TASK_STATE_TIMED_OUT), "timed_out");
  EXPECT_EQ(TaskStateName(v1::TASK_STATE_UNSPECIFIED), "unknown(0)");
  EXPECT_EQ(TaskStateName(static_cast<v1::TaskState>(99)), "unknown(99)");
}

}  // namespace
}  // namespace musafarm
