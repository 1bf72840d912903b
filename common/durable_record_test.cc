#include "common/durable_record.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace musafarm {
namespace {

namespace fs = std::filesystem;

std::string TestBase() {
  const fs::path dir =
      fs::path(::testing::TempDir()) /
      ("record_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return (dir / "state").string();
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct stat Stat(const std::string& path) {
  struct stat st = {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st;
}

TEST(DurableRecordTest, NothingWrittenIsNotFound) {
  const std::string base = TestBase();
  EXPECT_TRUE(absl::IsNotFound(DurableRecord::Read(base).status()));
}

TEST(DurableRecordTest, ReadGivesTheLastRecordWrittenAcrossWritersAndSizes) {
  const std::string base = TestBase();
  {
    DurableRecord r(base);
    ASSERT_TRUE(r.Write("first").ok());
    ASSERT_TRUE(r.Write(std::string(10000, 'x')).ok());  // outgrows a slot
    ASSERT_TRUE(r.Write("third").ok());
    EXPECT_EQ(*DurableRecord::Read(base), "third");
  }
  // A later writer (the next start) goes on from what is there.
  DurableRecord again(base);
  ASSERT_TRUE(again.Write("fourth").ok());
  EXPECT_EQ(*DurableRecord::Read(base), "fourth");
  ASSERT_TRUE(again.Write("").ok());
  absl::StatusOr<std::string> empty = DurableRecord::Read(base);
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(*empty, "");
}

// The point of it: records that fit are written over the slots' own blocks,
// no file replaced (same inode) and no size changed (no metadata to commit).
TEST(DurableRecordTest, WritesThatFitOverwriteTheSlotsInPlace) {
  const std::string base = TestBase();
  DurableRecord r(base);
  ASSERT_TRUE(r.Write("a").ok());
  ASSERT_TRUE(r.Write("b").ok());
  const struct stat s0 = Stat(base + ".0"), s1 = Stat(base + ".1");
  EXPECT_EQ(s0.st_size, 4096);
  EXPECT_EQ(s1.st_size, 4096);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(r.Write(std::string(100 + i, 'c')).ok());
  EXPECT_EQ(Stat(base + ".0").st_ino, s0.st_ino);
  EXPECT_EQ(Stat(base + ".1").st_ino, s1.st_ino);
  EXPECT_EQ(Stat(base + ".0").st_size, 4096);
  EXPECT_EQ(Stat(base + ".1").st_size, 4096);
  EXPECT_EQ(*DurableRecord::Read(base), std::string(104, 'c'));
}

// A crash in the middle of a write tears the slot being written; the other
// still holds the record before it.
TEST(DurableRecordTest, ATornSlotFallsBackToThePreviousRecord) {
  const std::string base = TestBase();
  {
    DurableRecord r(base);
    ASSERT_TRUE(r.Write("older record").ok());  // slot 0
    ASSERT_TRUE(r.Write("newer record").ok());  // slot 1
  }
  std::string bytes = Slurp(base + ".1");
  ASSERT_NE(bytes.find("newer"), std::string::npos);
  bytes[bytes.find("newer")] = 'N';  // one byte of the payload not on disk
  std::ofstream(base + ".1", std::ios::binary | std::ios::trunc) << bytes;
  EXPECT_EQ(*DurableRecord::Read(base), "older record");

  // The next write goes over the torn slot, never over the intact one.
  DurableRecord again(base);
  ASSERT_TRUE(again.Write("after the crash").ok());
  EXPECT_EQ(*DurableRecord::Read(base), "after the crash");
  EXPECT_NE(Slurp(base + ".0").find("older record"), std::string::npos);
}

TEST(DurableRecordTest, OnlyATornFirstWriteIsNotFound) {
  const std::string base = TestBase();
  std::ofstream(base + ".0", std::ios::binary) << std::string("mfrecor");  // cut in the header
  std::ofstream(base + ".1", std::ios::binary) << std::string(4096, '\0');
  EXPECT_TRUE(absl::IsNotFound(DurableRecord::Read(base).status()));
}

TEST(DurableRecordTest, AWriteIntoAMissingDirectoryFails) {
  DurableRecord r(TestBase() + "-gone/state");
  EXPECT_FALSE(r.Write("x").ok());
}

}  // namespace
}  // namespace musafarm
