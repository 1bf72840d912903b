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

}  // namespace
}  // namespace musafarm
