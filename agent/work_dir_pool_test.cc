#include "agent/work_dir_pool.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

namespace fs = std::filesystem;

ino_t Inode(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 ? st.st_ino : 0;
}

class WorkDirPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = (fs::temp_directory_path() /
             absl::StrCat("mf-work-dir-pool-", ::getpid(), "-",
                          ::testing::UnitTest::GetInstance()->current_test_info()->name()))
                .string();
    tasks_ = root_ + "/tasks";
    fs::remove_all(root_);
    fs::create_directories(tasks_);
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string root_;
  std::string tasks_;
};

TEST_F(WorkDirPoolTest, AnEmptiedDirIsRenamedToTheNextNameInsteadOfMadeAgain) {
  WorkDirPool pool(tasks_, 2);
  ASSERT_TRUE(pool.Make(tasks_ + "/1_a-1"));
  const ino_t first = Inode(tasks_ + "/1_a-1");
  ASSERT_TRUE(pool.Keep(tasks_ + "/1_a-1"));
  EXPECT_FALSE(fs::exists(tasks_ + "/1_a-1"));
  EXPECT_EQ(pool.size(), 1u);

  ASSERT_TRUE(pool.Make(tasks_ + "/1_b-2"));
  EXPECT_EQ(Inode(tasks_ + "/1_b-2"), first);
  EXPECT_TRUE(fs::is_empty(tasks_ + "/1_b-2"));
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_EQ(pool.made(), 1u);
  EXPECT_EQ(pool.reused(), 1u);
  // An empty pool makes one.
  ASSERT_TRUE(pool.Make(tasks_ + "/1_c-3"));
  EXPECT_EQ(pool.made(), 2u);
}

TEST_F(WorkDirPoolTest, KeepsOnlyEmptyDirsAsMadeAndNoMoreThanItsCapacity) {
  WorkDirPool pool(tasks_, 1);
  for (const char* name : {"/1_a-1", "/1_b-2", "/1_c-3", "/1_d-4"}) {
    ASSERT_TRUE(pool.Make(tasks_ + name));
  }
  std::ofstream(tasks_ + "/1_a-1/left") << "x";
  EXPECT_FALSE(pool.Keep(tasks_ + "/1_a-1"));  // not empty
  fs::create_directory(tasks_ + "/1_b-2/sub");
  EXPECT_FALSE(pool.Keep(tasks_ + "/1_b-2"));
  ::chmod((tasks_ + "/1_c-3").c_str(), 0500);
  EXPECT_FALSE(pool.Keep(tasks_ + "/1_c-3"));  // its task changed its mode
  EXPECT_FALSE(pool.Keep(tasks_ + "/missing"));
  EXPECT_EQ(pool.size(), 0u);
  EXPECT_TRUE(pool.Keep(tasks_ + "/1_d-4"));
  ASSERT_TRUE(pool.Make(tasks_ + "/1_e-5"));
  EXPECT_TRUE(pool.Keep(tasks_ + "/1_e-5"));
  ASSERT_TRUE(pool.Make(tasks_ + "/1_f-6"));
  ASSERT_TRUE(pool.Make(tasks_ + "/1_g-7"));
  EXPECT_TRUE(pool.Keep(tasks_ + "/1_f-6"));
  EXPECT_FALSE(pool.Keep(tasks_ + "/1_g-7"));  // full
  EXPECT_EQ(pool.size(), 1u);
}

// A leftover of the same name with files in it is the caller's to remove:
// Make says so and the kept dir stays kept.
TEST_F(WorkDirPoolTest, ALeftoverWithFilesIsLeftToTheCaller) {
  WorkDirPool pool(tasks_, 1);
  ASSERT_TRUE(pool.Make(tasks_ + "/1_a-1"));
  ASSERT_TRUE(pool.Keep(tasks_ + "/1_a-1"));
  fs::create_directory(tasks_ + "/1_b-2");
  std::ofstream(tasks_ + "/1_b-2/stale") << "old";
  EXPECT_FALSE(pool.Make(tasks_ + "/1_b-2"));
  EXPECT_EQ(pool.size(), 1u);
  EXPECT_TRUE(fs::exists(tasks_ + "/1_b-2/stale"));
}

}  // namespace
}  // namespace musafarm::agent
