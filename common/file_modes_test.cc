#include "common/file_modes.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"

namespace musafarm {
namespace {

unsigned ModeOf(const std::string& path) {
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(FileModesTest, DirsBecome0700FilesBecome0600WhateverTheyWere) {
  const std::string root = testing::TempDir() + "/file_modes";
  std::filesystem::remove_all(root);
  std::filesystem::create_directories(root);
  ::chmod(root.c_str(), 0755);
  ASSERT_TRUE(MakePrivateDir(root).ok());
  EXPECT_EQ(ModeOf(root), 0700u);
  ASSERT_TRUE(MakePrivateDir(root + "/a/b").ok());
  EXPECT_EQ(ModeOf(root + "/a/b"), 0700u);
  std::ofstream(root + "/f") << "x";
  ::chmod((root + "/f").c_str(), 0644);
  ASSERT_TRUE(MakePrivateFile(root + "/f").ok());
  EXPECT_EQ(ModeOf(root + "/f"), 0600u);
  EXPECT_TRUE(MakePrivateFile(root + "/missing").ok());
  EXPECT_FALSE(MakePrivateDir("/proc/no/such").ok());
}

}  // namespace
}  // namespace musafarm
