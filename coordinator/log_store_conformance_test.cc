// The LogStore conformance suite: what every LogStore backend must do (byte
// offsets, resends, gaps, reads, attempt boundaries, artifacts, restarts), run
// against each of them (files today). A new backend joins with one line at the
// bottom: an INSTANTIATE_TEST_SUITE_P naming how to open it. Tests of one
// backend's own layout stay in its own test file (file_log_store_test.cc).

#include <unistd.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "coordinator/log_store.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

// How to open one backend.
struct LogStoreBackend {
  std::string name;
  // Opens the log store kept under `dir`, an empty directory the test owns.
  // Opening the same `dir` again is a coordinator restart.
  std::function<std::unique_ptr<LogStore>(const std::string& dir)> open;
};

// gtest names the parameter by this in test listings and failures.
void PrintTo(const LogStoreBackend& backend, std::ostream* os) { *os << backend.name; }

class LogStoreConformanceTest : public ::testing::TestWithParam<LogStoreBackend> {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() /
            ("mf-logs-" + std::to_string(::getpid()) + "-" + GetParam().name + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::unique_ptr<LogStore> Open() { return GetParam().open(root_.string()); }

  std::filesystem::path root_;
};

TEST_P(LogStoreConformanceTest, AppendsByOffsetSkipsResendsRefusesGaps) {
  std::unique_ptr<LogStore> logs = Open();
  EXPECT_EQ(*logs->Append("7/dev-3.8/base", 1, 0, "hello "), 6u);
  EXPECT_EQ(*logs->Append("7/dev-3.8/base", 1, 6, "world\n"), 12u);
  // A resend overlapping what is stored writes only the new tail.
  EXPECT_EQ(*logs->Append("7/dev-3.8/base", 1, 3, "lo world\nmore"), 16u);
  EXPECT_EQ(*logs->Append("7/dev-3.8/base", 1, 0, "hello"), 16u);
  absl::StatusOr<uint64_t> gap = logs->Append("7/dev-3.8/base", 1, 20, "x");
  EXPECT_TRUE(absl::IsFailedPrecondition(gap.status()));
  EXPECT_EQ(*logs->Read("7/dev-3.8/base", 1, 0, 100), "hello world\nmore");
  EXPECT_EQ(*logs->Read("7/dev-3.8/base", 1, 6, 5), "world");
  EXPECT_EQ(logs->Size("7/dev-3.8/base", 1), 16u);
}

TEST_P(LogStoreConformanceTest, SizeSurvivesReopen) {
  {
    std::unique_ptr<LogStore> logs = Open();
    ASSERT_TRUE(logs->Append("1/t", 4, 0, "abc").ok());
  }
  std::unique_ptr<LogStore> again = Open();
  EXPECT_EQ(again->Size("1/t", 4), 3u);
  EXPECT_EQ(*again->Append("1/t", 4, 3, "def"), 6u);
  again->Close("1/t", 4);
  EXPECT_EQ(*again->Read("1/t", 4, 0, 10), "abcdef");
  EXPECT_EQ(again->Size("1/t", 5), 0u);
  EXPECT_EQ(*again->Read("1/t", 5, 0, 10), "");
}

TEST_P(LogStoreConformanceTest, AttemptsAndTasksAreSeparateLogs) {
  std::unique_ptr<LogStore> logs = Open();
  ASSERT_TRUE(logs->Append("7/a", 1, 0, "first try").ok());
  // A new attempt's log starts again at offset 0, whatever the last one held.
  EXPECT_EQ(*logs->Append("7/a", 2, 0, "retry"), 5u);
  EXPECT_TRUE(absl::IsFailedPrecondition(logs->Append("7/a", 3, 1, "x").status()));
  // A task whose id extends another's is still another task.
  EXPECT_EQ(*logs->Append("7/a/b", 1, 0, "nested"), 6u);
  EXPECT_EQ(*logs->Read("7/a", 1, 0, 100), "first try");
  EXPECT_EQ(*logs->Read("7/a", 2, 0, 100), "retry");
  EXPECT_EQ(*logs->Read("7/a/b", 1, 0, 100), "nested");
  EXPECT_EQ(logs->Size("7/a", 3), 0u);
}

TEST_P(LogStoreConformanceTest, ReadsPastTheEndAndAfterCloseAreShortNotErrors) {
  std::unique_ptr<LogStore> logs = Open();
  ASSERT_TRUE(logs->Append("7/a", 1, 0, "0123456789").ok());
  EXPECT_EQ(*logs->Read("7/a", 1, 8, 100), "89");
  EXPECT_EQ(*logs->Read("7/a", 1, 10, 100), "");
  EXPECT_EQ(*logs->Read("7/a", 1, 50, 100), "");
  EXPECT_EQ(*logs->Read("7/a", 1, 2, 0), "");
  // Closing finishes the attempt's log; what it holds is still read, and a
  // resend after it (an agent that reconnected late) is still idempotent.
  logs->CloseAttempt("7/a", 1);
  EXPECT_EQ(*logs->Read("7/a", 1, 0, 4), "0123");
  EXPECT_EQ(*logs->Append("7/a", 1, 5, "56789"), 10u);
  EXPECT_EQ(logs->Size("7/a", 1), 10u);
}

TEST_P(LogStoreConformanceTest, ArtifactsAreByteStreamsOfTheirOwn) {
  std::unique_ptr<LogStore> logs = Open();
  ASSERT_TRUE(logs->Append("7/a", 1, 0, "the log").ok());
  EXPECT_EQ(*logs->AppendArtifact("7/a", 1, "ut_output.txt", 0, "PASS "), 5u);
  EXPECT_EQ(*logs->AppendArtifact("7/a", 1, "ut_output.txt", 2, "SS 3 tests"), 12u);
  EXPECT_TRUE(absl::IsFailedPrecondition(
      logs->AppendArtifact("7/a", 1, "ut_output.txt", 20, "x").status()));
  EXPECT_EQ(*logs->AppendArtifact("7/a", 2, "ut_output.txt", 0, "2nd"), 3u);
  EXPECT_EQ(logs->ArtifactSize("7/a", 1, "ut_output.txt"), 12u);
  EXPECT_EQ(logs->ArtifactSize("7/a", 1, "other.txt"), 0u);
  EXPECT_EQ(*logs->ReadArtifact("7/a", 1, "ut_output.txt", 5, 100), "3 tests");
  EXPECT_EQ(*logs->ReadArtifact("7/a", 2, "ut_output.txt", 0, 100), "2nd");
  EXPECT_EQ(*logs->Read("7/a", 1, 0, 100), "the log");  // the log is untouched
  logs->CloseAttempt("7/a", 1);
  std::unique_ptr<LogStore> again = Open();
  EXPECT_EQ(again->ArtifactSize("7/a", 1, "ut_output.txt"), 12u);
}

TEST_P(LogStoreConformanceTest, RefusesArtifactNamesThatAreNotPlainFileNames) {
  std::unique_ptr<LogStore> logs = Open();
  const std::string bad_names[] = {
      "", ".", "..", "a/b", "../escape", std::string("a\0b", 3), std::string(256, 'x')};
  for (const std::string& bad : bad_names) {
    SCOPED_TRACE(bad);
    EXPECT_FALSE(LogStore::ValidArtifactName(bad));
    EXPECT_TRUE(absl::IsInvalidArgument(logs->AppendArtifact("7/a", 1, bad, 0, "x").status()));
    EXPECT_TRUE(absl::IsInvalidArgument(logs->ReadArtifact("7/a", 1, bad, 0, 1).status()));
    EXPECT_EQ(logs->ArtifactSize("7/a", 1, bad), 0u);
  }
  EXPECT_TRUE(LogStore::ValidArtifactName("ut_output.txt"));
  EXPECT_TRUE(LogStore::ValidArtifactName(std::string(255, 'x')));
}

std::string BackendName(const ::testing::TestParamInfo<LogStoreBackend>& info) {
  return info.param.name;
}

// --- backends: one line each -------------------------------------------------
TEST_P(LogStoreConformanceTest, TaskBytesCountEveryAttemptAndRemoveTaskTakesOnlyThatTask) {
  std::unique_ptr<LogStore> logs = Open();
  ASSERT_TRUE(logs->Append("7/py-3.8/base", 1, 0, "first try\n").ok());  // 10 bytes
  logs->CloseAttempt("7/py-3.8/base", 1);
  ASSERT_TRUE(logs->Append("7/py-3.8/base", 4, 0, "again\n").ok());  // 6, still open
  ASSERT_TRUE(logs->AppendArtifact("7/py-3.8/base", 4, "out.txt", 0, "12345").ok());
  ASSERT_TRUE(logs->Append("7/py-3.8/dev", 5, 0, "other task").ok());
  ASSERT_TRUE(logs->Append("8/py-3.8/base", 6, 0, "other job").ok());
  EXPECT_EQ(logs->TaskBytes("7/py-3.8/base"), 10u + 6u + 5u);
  EXPECT_EQ(logs->TaskBytes("7/py-3.8/dev"), 10u);
  EXPECT_EQ(logs->TaskBytes("9/none"), 0u);

  ASSERT_TRUE(logs->RemoveTask("7/py-3.8/base").ok());
  EXPECT_EQ(logs->TaskBytes("7/py-3.8/base"), 0u);
  EXPECT_EQ(logs->Size("7/py-3.8/base", 4), 0u);
  EXPECT_EQ(*logs->Read("7/py-3.8/base", 1, 0, 100), "");
  EXPECT_EQ(logs->ArtifactSize("7/py-3.8/base", 4, "out.txt"), 0u);
  EXPECT_EQ(*logs->Read("7/py-3.8/dev", 5, 0, 100), "other task");
  EXPECT_EQ(*logs->Read("8/py-3.8/base", 6, 0, 100), "other job");
  EXPECT_TRUE(logs->RemoveTask("7/py-3.8/base").ok()) << "nothing there is fine";
  ASSERT_TRUE(logs->RemoveTask("7/py-3.8/dev").ok());
  std::unique_ptr<LogStore> reopened = Open();  // a restart sees the same
  EXPECT_EQ(reopened->TaskBytes("7/py-3.8/base"), 0u);
  EXPECT_EQ(reopened->TaskBytes("8/py-3.8/base"), 9u);
}

INSTANTIATE_TEST_SUITE_P(Files, LogStoreConformanceTest,
                         ::testing::Values(LogStoreBackend{"files", OpenFileLogStore}),
                         BackendName);

}  // namespace
}  // namespace musafarm::coordinator
