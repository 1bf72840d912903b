#include "common/event_loop.h"

#include <vector>

#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"

namespace musafarm {
namespace {

TEST(EventLoopTest, RunsPostedClosuresInOrder) {
  EventLoop loop;
  std::vector<int> seen;
  for (int i = 0; i < 5; ++i) loop.Post([&seen, i] { seen.push_back(i); });
  EXPECT_EQ(loop.RunUntilIdle(), 5);
  EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(EventLoopTest, TimersFireOnlyWhenDueByTheClock) {
  testing::FakeClock clock;
  EventLoop loop(&clock);
  std::vector<int> seen;
  loop.PostAfter(absl::Seconds(10), [&] { seen.push_back(10); });
  loop.PostAfter(absl::Seconds(5), [&] { seen.push_back(5); });
  EXPECT_EQ(loop.RunUntilIdle(), 0);
  clock.Advance(absl::Seconds(6));
  loop.RunUntilIdle();
  EXPECT_EQ(seen, (std::vector<int>{5}));
  clock.Advance(absl::Seconds(6));
  loop.RunUntilIdle();
  EXPECT_EQ(seen, (std::vector<int>{5, 10}));
}

TEST(EventLoopTest, ThreadRunsPostsAndRunSyncWaits) {
  EventLoop loop;
  loop.Start();
  int value = 0;
  loop.Post([&] { value = 1; });
  loop.RunSync([&] { value += 1; });
  EXPECT_EQ(value, 2);
  absl::Notification fired;
  loop.PostAfter(absl::Milliseconds(1), [&] { fired.Notify(); });
  EXPECT_TRUE(fired.WaitForNotificationWithTimeout(absl::Seconds(10)));
  loop.Stop();
}

}  // namespace
}  // namespace musafarm
