#include "coordinator/log_backlog.h"

#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

TEST(LogBacklogTest, ANoticeIsDueOnceWhenTheBacklogFallsToWhatWasAskedFor) {
  LogBacklog b;
  b.Queued(10);
  b.Queued(5);
  EXPECT_EQ(b.unwritten(), 15u);
  EXPECT_FALSE(b.Written(3));  // nobody asked
  EXPECT_FALSE(b.Ask(8));      // 12 unwritten
  EXPECT_FALSE(b.Written(2));  // 10
  EXPECT_TRUE(b.Written(2));   // 8: due
  EXPECT_FALSE(b.Written(8));  // told once
  EXPECT_EQ(b.unwritten(), 0u);
}

TEST(LogBacklogTest, AskingWhenAlreadyDrainedIsDueAtOnceAndWritesNeverGoBelowZero) {
  LogBacklog b;
  b.Queued(4);
  EXPECT_TRUE(b.Ask(4));
  EXPECT_FALSE(b.Written(100));
  EXPECT_EQ(b.unwritten(), 0u);
}

}  // namespace
}  // namespace musafarm::coordinator
