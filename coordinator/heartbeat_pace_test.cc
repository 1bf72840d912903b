#include "coordinator/heartbeat_pace.h"

#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

HeartbeatPace::Options Defaults() {
  HeartbeatPace::Options o;
  o.base_interval = absl::Seconds(3);
  o.timeout = absl::Seconds(10);
  o.max_rate = 500;
  return o;
}

TEST(HeartbeatPaceTest, ASmallFarmKeepsTheBaseIntervalAndTheConfiguredTimeout) {
  HeartbeatPace pace(Defaults());
  for (size_t n = 1; n <= 1500; ++n) {
    const HeartbeatPace::Decision d = pace.OnRegister(n);
    ASSERT_EQ(d.interval, absl::Seconds(3)) << n << " agents";
    ASSERT_FALSE(d.tell_everyone) << n << " agents";
  }
  EXPECT_EQ(pace.SilenceAllowed(absl::Seconds(3)), absl::Seconds(10));
}

// 10,000 agents heartbeat at most 500 times a second together, and the rest
// of the farm hears of each longer interval a few times over, not at every
// registration.
TEST(HeartbeatPaceTest, TheIntervalGrowsAheadOfTheFarmAndEveryoneIsToldRarely) {
  HeartbeatPace pace(Defaults());
  int told = 0;
  absl::Duration last = absl::Seconds(3);
  for (size_t n = 1; n <= 10000; ++n) {
    const HeartbeatPace::Decision d = pace.OnRegister(n);
    ASSERT_GE(d.interval, last) << n << " agents";
    ASSERT_GE(d.interval, absl::Seconds(static_cast<double>(n) / 500)) << n << " agents";
    if (d.tell_everyone) {
      ++told;
      EXPECT_GT(d.interval, last);
    }
    last = d.interval;
  }
  EXPECT_LE(told, 10);
  EXPECT_GE(told, 3);
  EXPECT_LE(last, absl::Seconds(25));  // 10,000 / 500 with a quarter to spare
  // The deadline keeps the base's 7 s of grace over the interval.
  EXPECT_EQ(pace.SilenceAllowed(absl::Seconds(25)), absl::Seconds(32));
}

TEST(HeartbeatPaceTest, NewcomersToAFarmThatShrankGetAShorterInterval) {
  HeartbeatPace pace(Defaults());
  const absl::Duration big = pace.OnRegister(10000).interval;
  EXPECT_EQ(pace.OnRegister(9000).interval, big) << "a little smaller: unchanged";
  const HeartbeatPace::Decision small = pace.OnRegister(100);
  EXPECT_EQ(small.interval, absl::Seconds(3));
  EXPECT_FALSE(small.tell_everyone) << "the others only heartbeat less often";
}

TEST(HeartbeatPaceTest, ZeroRateMeansAFixedInterval) {
  HeartbeatPace::Options o = Defaults();
  o.max_rate = 0;
  HeartbeatPace pace(o);
  EXPECT_EQ(pace.OnRegister(100000).interval, absl::Seconds(3));
}

}  // namespace
}  // namespace musafarm::coordinator
