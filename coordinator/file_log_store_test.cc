#include "coordinator/file_log_store.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

// The layout operators (and the docs) rely on; what every backend does is in
// log_store_conformance_test.cc.
TEST(FileLogStoreTest, OneFilePerAttemptUnderTheTaskPath) {
  const std::filesystem::path root =
      std::filesystem::temp_directory_path() / ("mf-file-logs-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  {
    FileLogStore logs(root.string());
    ASSERT_TRUE(logs.Append("7/dev-3.8/base", 1, 0, "hello").ok());
    ASSERT_TRUE(logs.AppendArtifact("7/dev-3.8/base", 1, "ut_output.txt", 0, "ok").ok());
  }
  EXPECT_TRUE(std::filesystem::exists(root / "7/dev-3.8/base/1.log"));
  EXPECT_EQ(std::filesystem::file_size(root / "7/dev-3.8/base/1.log"), 5u);
  EXPECT_TRUE(std::filesystem::exists(root / "7/dev-3.8/base/1.artifacts/ut_output.txt"));
  std::filesystem::remove_all(root);
}

// Retention removes a task's files and the directories it leaves empty, and
// keeps what else lives there.
TEST(FileLogStoreTest, RemoveTaskRemovesItsEmptyDirectoriesAndKeepsTheRest) {
  const std::filesystem::path root = std::filesystem::temp_directory_path() /
                                     ("mf-file-logs-rm-" + std::to_string(::getpid()));
  std::filesystem::remove_all(root);
  FileLogStore logs(root.string());
  ASSERT_TRUE(logs.Append("7/dev-3.8/base", 1, 0, "a").ok());
  ASSERT_TRUE(logs.Append("7/dev-3.8/dev", 2, 0, "b").ok());
  std::filesystem::create_directories(root / "7/dev-3.8/base/notes");  // not the store's
  ASSERT_TRUE(logs.RemoveTask("7/dev-3.8/dev").ok());
  EXPECT_FALSE(std::filesystem::exists(root / "7/dev-3.8/dev"));
  EXPECT_TRUE(std::filesystem::exists(root / "7/dev-3.8/base/1.log"));
  ASSERT_TRUE(logs.RemoveTask("7/dev-3.8/base").ok());
  EXPECT_FALSE(std::filesystem::exists(root / "7/dev-3.8/base/1.log"));
  EXPECT_TRUE(std::filesystem::exists(root / "7/dev-3.8/base/notes"));
  std::filesystem::remove(root / "7/dev-3.8/base/notes");
  ASSERT_TRUE(logs.RemoveTask("7/dev-3.8/base").ok());
  EXPECT_FALSE(std::filesystem::exists(root / "7"));
  EXPECT_TRUE(std::filesystem::exists(root));
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace musafarm::coordinator
