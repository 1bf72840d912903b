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

}  // namespace
}  // namespace musafarm::coordinator
