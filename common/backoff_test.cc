#include "common/backoff.h"

#include "gtest/gtest.h"

namespace musafarm {
namespace {

TEST(BackoffTest, GrowsToTheCapWithJitterAndResets) {
  Backoff b(absl::Milliseconds(100), absl::Seconds(2), /*seed=*/42);
  absl::Duration max_seen = absl::ZeroDuration();
  for (int i = 0; i < 50; ++i) {
    absl::Duration d = b.Next();
    EXPECT_GE(d, absl::Milliseconds(50));
    EXPECT_LE(d, absl::Seconds(2));
    max_seen = std::max(max_seen, d);
  }
  EXPECT_GT(max_seen, absl::Milliseconds(400));  // grew past the first ceilings
  b.Reset();
  EXPECT_LE(b.Next(), absl::Milliseconds(100));
}

TEST(BackoffTest, JitterSpreadsAgents) {
  Backoff a(absl::Seconds(1), absl::Seconds(30), 1), c(absl::Seconds(1), absl::Seconds(30), 2);
  for (int i = 0; i < 4; ++i) {
    a.Next();
    c.Next();
  }
  EXPECT_NE(a.Next(), c.Next());
}

}  // namespace
}  // namespace musafarm
