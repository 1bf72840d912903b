#include "common/duration_text.h"

#include "gtest/gtest.h"

namespace musafarm {
namespace {

TEST(DurationTextTest, DaysAndAbslSyntax) {
  absl::Duration d;
  ASSERT_TRUE(ParseDurationText("90d", &d));
  EXPECT_EQ(d, absl::Hours(24 * 90));
  ASSERT_TRUE(ParseDurationText("1.5d", &d));
  EXPECT_EQ(d, absl::Hours(36));
  ASSERT_TRUE(ParseDurationText("1h30m", &d));
  EXPECT_EQ(d, absl::Minutes(90));
  ASSERT_TRUE(ParseDurationText("45s", &d));
  EXPECT_EQ(d, absl::Seconds(45));
}

TEST(DurationTextTest, RefusesWhatIsNotAPositiveDuration) {
  absl::Duration d = absl::Seconds(7);
  for (const char* bad : {"", "d", "90", "abc", "-1h", "0s", "0d", "inf", "1w"}) {
    EXPECT_FALSE(ParseDurationText(bad, &d)) << bad;
  }
  EXPECT_EQ(d, absl::Seconds(7));
}

}  // namespace
}  // namespace musafarm
