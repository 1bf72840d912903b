#include "common/format_bytes.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace musafarm {
namespace {

// Moved from cli/render_test.cc (FormatBytesTest.BinaryUnits).
TEST(FormatBytesTest, BinaryUnits) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1024), "1 KiB");
  EXPECT_EQ(FormatBytes(4096), "4 KiB");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(100 * 1024 + 300), "100 KiB");
  EXPECT_EQ(FormatBytes(3u << 20), "3 MiB");
  EXPECT_EQ(FormatBytes(uint64_t{12} << 30), "12 GiB");
}

// Moved from agent/disk_test.cc (DiskTest.FormatsBytesForPeople); whole units
// now read "5 GiB" as in the CLI (and as agent_service.proto documents).
TEST(FormatBytesTest, DiskSizesForPeople) {
  EXPECT_EQ(FormatBytes(17), "17 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
  EXPECT_EQ(FormatBytes(uint64_t{5} << 30), "5 GiB");
  EXPECT_EQ(FormatBytes(uint64_t{1288490189}), "1.2 GiB");
}

TEST(FormatBytesTest, LargestUnitIsExbibytes) {
  EXPECT_EQ(FormatBytes(UINT64_MAX), "16 EiB");
  EXPECT_EQ(FormatBytes(uint64_t{1000} << 50), "1000 PiB");
}

}  // namespace
}  // namespace musafarm
