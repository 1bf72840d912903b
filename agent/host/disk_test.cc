#include "agent/host/disk.h"

#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

TEST(DiskTest, ParsesSizesWithBinarySuffixes) {
  EXPECT_EQ(*ParseBytes("0"), 0u);
  EXPECT_EQ(*ParseBytes("12345"), 12345u);
  EXPECT_EQ(*ParseBytes("5G"), uint64_t{5} << 30);
  EXPECT_EQ(*ParseBytes("5g"), uint64_t{5} << 30);
  EXPECT_EQ(*ParseBytes("5GiB"), uint64_t{5} << 30);
  EXPECT_EQ(*ParseBytes("5GB"), uint64_t{5} << 30);
  EXPECT_EQ(*ParseBytes(" 512M "), uint64_t{512} << 20);
  EXPECT_EQ(*ParseBytes("100k"), 102400u);
  EXPECT_EQ(*ParseBytes("1.5G"), uint64_t{3} << 29);
  EXPECT_EQ(*ParseBytes("2T"), uint64_t{2} << 40);
  EXPECT_EQ(*ParseBytes("1P"), uint64_t{1} << 50);
  for (const char* bad : {"", "G", "-1", "5X", "5 G B", "1.5", "1e9", "abc", "99999999P"}) {
    EXPECT_FALSE(ParseBytes(bad).ok()) << bad;
  }
}

TEST(DiskTest, LowDiskReasonSaysHowMuchIsFreeWhereAndTheThreshold) {
  EXPECT_EQ(LowDiskReason(uint64_t{1288490189}, uint64_t{5} << 30, "/var/lib/musafarm-agent"),
            "low disk: 1.2 GiB free in /var/lib/musafarm-agent, below 5 GiB");
  EXPECT_EQ(LowDiskReason(uint64_t{5} << 30, uint64_t{5} << 30, "/w"), "") << "at the threshold";
  EXPECT_EQ(LowDiskReason(uint64_t{6} << 30, uint64_t{5} << 30, "/w"), "");
  EXPECT_EQ(LowDiskReason(0, 0, "/w"), "") << "0 disables the check";
}

TEST(DiskTest, MeasuresARealFileSystem) {
  absl::StatusOr<uint64_t> free = FreeDiskBytes("/");
  ASSERT_TRUE(free.ok()) << free.status();
  EXPECT_GT(*free, 0u);
  EXPECT_FALSE(FreeDiskBytes("/no/such/dir").ok());
}

}  // namespace
}  // namespace musafarm::agent
