#include "common/atomic_file.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm {
namespace {

namespace fs = std::filesystem;

std::string TestDir() {
  const fs::path dir =
      fs::path(::testing::TempDir()) /
      ("atomic_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(AtomicFileTest, WritesThePartFileAndRenamesOnCommit) {
  const std::string path = TestDir() + "/f.txt";
  std::ofstream(path) << "old";
  absl::StatusOr<std::unique_ptr<AtomicFile>> f = AtomicFile::Create(path);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE((*f)->Append("hello ").ok());
  ASSERT_TRUE((*f)->Append("world").ok());
  EXPECT_EQ((*f)->size(), 11u);
  // Until the commit, PATH keeps its old content and the bytes are in PATH.part.
  EXPECT_EQ(Read(path), "old");
  EXPECT_EQ(Read(path + ".part"), "hello world");
  ASSERT_TRUE((*f)->Commit().ok());
  EXPECT_EQ(Read(path), "hello world");
  EXPECT_FALSE(fs::exists(path + ".part"));
}

TEST(AtomicFileTest, DroppedWithoutCommitLeavesNothing) {
  const std::string path = TestDir() + "/f.txt";
  {
    absl::StatusOr<std::unique_ptr<AtomicFile>> f = AtomicFile::Create(path);
    ASSERT_TRUE(f.ok()) << f.status();
    ASSERT_TRUE((*f)->Append("partial").ok());
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".part"));
}

TEST(AtomicFileTest, WriteFileAtomicallyAndItsErrors) {
  const std::string dir = TestDir();
  ASSERT_TRUE(WriteFileAtomically(dir + "/a.xml", "<x/>\n").ok());
  EXPECT_EQ(Read(dir + "/a.xml"), "<x/>\n");
  absl::Status s = WriteFileAtomically(dir + "/missing/a.xml", "x");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(dir + "/missing/a.xml.part: "));
}

// Issue 19: the agent's running attempts are written without fsync; the
// replacement is still whole or not at all for every other process.
TEST(AtomicFileTest, WriteFileUnsyncedReplacesTheFileWhole) {
  const std::string dir = TestDir();
  ASSERT_TRUE(WriteFileUnsynced(dir + "/s.pb", "old", 0600).ok());
  ASSERT_TRUE(WriteFileUnsynced(dir + "/s.pb", "new state", 0600).ok());
  EXPECT_EQ(Read(dir + "/s.pb"), "new state");
  EXPECT_FALSE(fs::exists(dir + "/s.pb.part"));
  EXPECT_EQ(fs::status(dir + "/s.pb").permissions() & fs::perms::all, fs::perms::owner_read | fs::perms::owner_write);
  absl::Status s = WriteFileUnsynced(dir + "/missing/s.pb", "x");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(dir + "/missing/s.pb.part: "));
}

}  // namespace
}  // namespace musafarm
