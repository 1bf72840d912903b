#include "common/task_state.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
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

// TaskStateName is a switch (the generated TaskState_Name builds every
// descriptor on first use): a value added to the enum must be named here too.
TEST(TaskStateTest, EveryValueIsNamedAsTheProtoNamesIt) {
  const google::protobuf::EnumDescriptor* d = v1::TaskState_descriptor();
  ASSERT_GT(d->value_count(), 1);
  for (int i = 0; i < d->value_count(); ++i) {
    const google::protobuf::EnumValueDescriptor* v = d->value(i);
    const auto s = static_cast<v1::TaskState>(v->number());
    if (s == v1::TASK_STATE_UNSPECIFIED) continue;
    ASSERT_TRUE(absl::StartsWith(v->name(), "TASK_STATE_")) << v->name();
    EXPECT_EQ(TaskStateName(s), absl::AsciiStrToLower(v->name().substr(11))) << v->name();
  }
}

}  // namespace
}  // namespace musafarm
