#include "coordinator/log_store.h"

#include <unistd.h>

#include <filesystem>
#include <memory>

#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

class LogStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("mf-logs-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::filesystem::path root_;
};

TEST_F(LogStoreTest, AppendsByOffsetSkipsResendsRefusesGaps) {
  std::unique_ptr<LogStore> logs = OpenFileLogStore(root_.string());
  EXPECT_EQ(*logs->Append("7/dev-3.8/base", 1, 0, "hello "), 6u);
  EXPECT_EQ(*logs->Append("7/dev-3.8/base", 1, 6, "world\n"), 12u);
  // A resend overlapping what is stored writes only the new tail.
  EXPECT_EQ(*logs->Append("7/dev-3.8/base", 1, 3, "lo world\nmore"), 16u);
  EXPECT_EQ(*logs->Append("7/dev-3.8/base", 1, 0, "hello"), 16u);
  absl::StatusOr<uint64_t> gap = logs->Append("7/dev-3.8/base", 1, 20, "x");
  EXPECT_TRUE(absl::IsFailedPrecondition(gap.status()));
  EXPECT_EQ(*logs->Read("7/dev-3.8/base", 1, 0, 100), "hello world\nmore");
  EXPECT_EQ(*logs->Read("7/dev-3.8/base", 1, 6, 5), "world");
  EXPECT_TRUE(std::filesystem::exists(root_ / "7/dev-3.8/base/1.log"));
}

TEST_F(LogStoreTest, SizeSurvivesReopen) {
  {
    std::unique_ptr<LogStore> logs = OpenFileLogStore(root_.string());
    ASSERT_TRUE(logs->Append("1/t", 4, 0, "abc").ok());
  }
  std::unique_ptr<LogStore> again = OpenFileLogStore(root_.string());
  EXPECT_EQ(again->Size("1/t", 4), 3u);
  EXPECT_EQ(*again->Append("1/t", 4, 3, "def"), 6u);
  again->Close("1/t", 4);
  EXPECT_EQ(*again->Read("1/t", 4, 0, 10), "abcdef");
  EXPECT_EQ(again->Size("1/t", 5), 0u);
  EXPECT_EQ(*again->Read("1/t", 5, 0, 10), "");
}

}  // namespace
}  // namespace musafarm::coordinator
