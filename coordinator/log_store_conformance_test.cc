// The LogStore conformance suite: what every LogStore backend must do (byte
// offsets, resends, gaps, reads, attempt boundaries, artifacts, restarts), run
// against each of them (files, and PostgreSQL in the run's cluster). A new backend joins with one line at the
// bottom: an INSTANTIATE_TEST_SUITE_P naming how to open it. Tests of one
// backend's own layout stay in its own test file (file_log_store_test.cc).

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include "coordinator/log_store.h"
#include "coordinator/postgres_log_store.h"
#include "gtest/gtest.h"
#include "tests/support/private_postgres.h"

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

// The contract the core's acks rely on: once Flush() returns, another
// instance (a coordinator that took over while this one still runs, or a
// restart after a crash that never ran a destructor) reads every byte.
TEST_P(LogStoreConformanceTest, AcceptedBytesAreDurableOnceFlushed) {
  std::unique_ptr<LogStore> logs = Open();
  std::string expected;
  for (int i = 0; i < 50; ++i) {
    const std::string line = "line " + std::to_string(i) + "\n";
    ASSERT_TRUE(logs->Append("3/t", 2, expected.size(), line).ok());
    expected += line;
  }
  ASSERT_TRUE(logs->AppendArtifact("3/t", 2, "out.txt", 0, "artifact").ok());
  ASSERT_TRUE(logs->Flush().ok());
  std::unique_ptr<LogStore> other = Open();
  EXPECT_EQ(other->Size("3/t", 2), expected.size());
  EXPECT_EQ(*other->Read("3/t", 2, 0, 10000), expected);
  EXPECT_EQ(other->ArtifactSize("3/t", 2, "out.txt"), 8u);
  // The other instance resumes where the stored log ends.
  EXPECT_EQ(*other->Append("3/t", 2, expected.size(), "tail"), expected.size() + 4);
  ASSERT_TRUE(other->Flush().ok());
}

TEST_P(LogStoreConformanceTest, LargeAppendsReadBackByteExactAcrossAnyRange) {
  std::unique_ptr<LogStore> logs = Open();
  // Every byte value, in pieces of odd sizes, past a megabyte (beyond any
  // backend's row or buffer size).
  std::string all;
  for (size_t i = 0; all.size() < (1u << 20) + 12345; ++i) {
    all.push_back(static_cast<char>((i * 7 + i / 251) & 0xff));
  }
  for (size_t at = 0; at < all.size();) {
    const size_t n = std::min<size_t>(all.size() - at, 1000 + (at % 70000));
    ASSERT_EQ(*logs->Append("9/big", 1, at, absl::string_view(all).substr(at, n)), at + n);
    at += n;
    if (at % 3 == 0) {
      ASSERT_TRUE(logs->Flush().ok());
    }
  }
  logs->CloseAttempt("9/big", 1);
  std::unique_ptr<LogStore> again = Open();
  EXPECT_EQ(again->Size("9/big", 1), all.size());
  EXPECT_TRUE(*again->Read("9/big", 1, 0, all.size() + 10) == all) << "the log differs";
  for (const uint64_t from : {uint64_t{1}, uint64_t{262143}, uint64_t{262144}, uint64_t{700001}}) {
    for (const uint64_t n : {uint64_t{1}, uint64_t{5000}, uint64_t{300000}}) {
      EXPECT_TRUE(*again->Read("9/big", 1, from, n) == all.substr(from, n)) << from << "+" << n;
    }
  }
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

// A database per test directory in the run's cluster: opening the same
// directory again reconnects to it (a restart).
std::unique_ptr<LogStore> OpenTestPostgresLogs(const std::string& dir) {
  absl::StatusOr<std::string> url = test_support::TestDatabaseFor(dir);
  absl::StatusOr<std::unique_ptr<LogStore>> logs =
      url.ok() ? OpenPostgresLogStore(*url) : url.status();
  if (!logs.ok()) {
    ADD_FAILURE() << logs.status();
    return nullptr;
  }
  return *std::move(logs);
}

INSTANTIATE_TEST_SUITE_P(Postgres, LogStoreConformanceTest,
                         ::testing::Values(LogStoreBackend{"postgres", OpenTestPostgresLogs}),
                         BackendName);

}  // namespace
}  // namespace musafarm::coordinator
