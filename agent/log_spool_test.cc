#include "agent/log_spool.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

namespace fs = std::filesystem;

class LogSpoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("mf-spool-", ::getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    auto spool = LogSpool::Create((dir_ / "a.log").string());
    ASSERT_TRUE(spool.ok()) << spool.status();
    spool_ = *std::move(spool);
  }
  void TearDown() override {
    spool_.reset();
    fs::remove_all(dir_);
  }
  uint64_t FileSize() { return fs::file_size(dir_ / "a.log"); }
  std::string ReadAll(uint64_t from) {
    auto data = spool_->Read(from, 1 << 30);
    EXPECT_TRUE(data.ok()) << data.status();
    return data.ok() ? *data : "";
  }

  fs::path dir_;
  std::unique_ptr<LogSpool> spool_;
};

// A log of `n` bytes whose every byte says where it is.
std::string Pattern(uint64_t from, size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (from + i) % 26);
  return s;
}

TEST_F(LogSpoolTest, KeepsBytesOnDiskNotInMemoryAndReadsFromAnyOffset) {
  ASSERT_TRUE(spool_->Append("hello ").ok());
  ASSERT_TRUE(spool_->Append("world\n").ok());
  EXPECT_EQ(spool_->total(), 12u);
  EXPECT_EQ(spool_->base(), 0u);
  EXPECT_EQ(FileSize(), 12u);  // the bytes are in the file
  EXPECT_EQ(ReadAll(0), "hello world\n");
  EXPECT_EQ(*spool_->Read(6, 3), "wor");
  EXPECT_EQ(*spool_->Read(12, 10), "");  // at the end: nothing
  EXPECT_FALSE(spool_->Read(13, 1).ok());
}

TEST_F(LogSpoolTest, AckDropsThePrefixAndClamps) {
  ASSERT_TRUE(spool_->Append("0123456789").ok());
  EXPECT_EQ(spool_->Ack(4), 4u);
  EXPECT_EQ(spool_->base(), 4u);
  EXPECT_EQ(spool_->held(), 6u);
  EXPECT_FALSE(spool_->Read(3, 1).ok()) << "acknowledged bytes are gone";
  EXPECT_EQ(ReadAll(4), "456789");
  EXPECT_EQ(spool_->Ack(2), 0u) << "an older ack changes nothing";
  EXPECT_EQ(spool_->Ack(99), 6u) << "clamped to total";
  EXPECT_EQ(spool_->base(), 10u);
  EXPECT_EQ(spool_->held(), 0u);
}

TEST_F(LogSpoolTest, FullAckTruncatesTheFileAndOffsetsGoOn) {
  ASSERT_TRUE(spool_->Append(Pattern(0, 5000)).ok());
  spool_->Ack(5000);
  EXPECT_EQ(FileSize(), 0u);
  ASSERT_TRUE(spool_->Append(Pattern(5000, 100)).ok());
  EXPECT_EQ(FileSize(), 100u);
  EXPECT_EQ(ReadAll(5000), Pattern(5000, 100));
}

TEST_F(LogSpoolTest, SmallAcknowledgedPrefixIsNotCompacted) {
  ASSERT_TRUE(spool_->Append(Pattern(0, 3000)).ok());
  spool_->Ack(2000);  // below kCompactMin: rewriting would cost more than it frees
  EXPECT_EQ(FileSize(), 3000u);
  EXPECT_EQ(ReadAll(2000), Pattern(2000, 1000));
}

TEST_F(LogSpoolTest, LargeAcknowledgedPrefixIsCompactedAndTheRestKept) {
  const uint64_t n = 3 * LogSpool::kCompactMin;
  ASSERT_TRUE(spool_->Append(Pattern(0, n)).ok());
  // A prefix shorter than the rest is left, however big.
  spool_->Ack(n / 3);
  EXPECT_EQ(FileSize(), n);
  // Once it is at least as long as the rest, the rest moves to the front.
  spool_->Ack(n / 2 + 7);
  EXPECT_EQ(FileSize(), n - (n / 2 + 7));
  EXPECT_EQ(spool_->base(), n / 2 + 7);
  EXPECT_EQ(ReadAll(n / 2 + 7), Pattern(n / 2 + 7, n - (n / 2 + 7)));
  // Appends and reads go on at log offsets.
  ASSERT_TRUE(spool_->Append(Pattern(n, 10)).ok());
  EXPECT_EQ(*spool_->Read(n - 5, 15), Pattern(n - 5, 15));
}

TEST_F(LogSpoolTest, FileStaysWithinTwiceWhatIsHeldUnderSteadyAcks) {
  // A stream that is acknowledged some way behind what is written.
  uint64_t written = 0;
  uint64_t max_file = 0;
  for (int i = 0; i < 400; ++i) {
    ASSERT_TRUE(spool_->Append(Pattern(written, 64 * 1024)).ok());
    written += 64 * 1024;
    if (written > 512 * 1024) spool_->Ack(written - 512 * 1024);
    max_file = std::max<uint64_t>(max_file, FileSize());
    ASSERT_LE(FileSize(), 2 * spool_->held() + LogSpool::kCompactMin) << "after " << written;
  }
  EXPECT_EQ(spool_->total(), written);
  EXPECT_EQ(ReadAll(spool_->base()), Pattern(spool_->base(), spool_->held()));
  EXPECT_LT(max_file, written / 4) << "the file must not grow with the whole log";
}

TEST_F(LogSpoolTest, DestructorRemovesTheFile) {
  ASSERT_TRUE(spool_->Append("x").ok());
  spool_.reset();
  EXPECT_FALSE(fs::exists(dir_ / "a.log"));
}

TEST_F(LogSpoolTest, AKeptFileIsReopenedWithItsUnacknowledgedTail) {
  // Compacted: the file holds the log's tail only.
  const std::string log = Pattern(0, 3 * LogSpool::kCompactMin);
  ASSERT_TRUE(spool_->Append(log).ok());
  spool_->Ack(2 * LogSpool::kCompactMin);
  ASSERT_LT(FileSize(), log.size());
  ASSERT_TRUE(spool_->Sync().ok());
  spool_->Keep();
  spool_.reset();
  ASSERT_TRUE(fs::exists(dir_ / "a.log"));
  auto reopened = LogSpool::Open((dir_ / "a.log").string(), log.size());
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  spool_ = *std::move(reopened);
  EXPECT_EQ(spool_->total(), log.size());
  EXPECT_EQ(spool_->base(), 2 * LogSpool::kCompactMin);
  EXPECT_EQ(ReadAll(spool_->base()), log.substr(2 * LogSpool::kCompactMin));
  // A file longer than the log it is said to end cannot be that log's tail.
  EXPECT_EQ(LogSpool::Open((dir_ / "a.log").string(), 10).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_FALSE(LogSpool::Open((dir_ / "none.log").string(), 10).ok());
}

TEST_F(LogSpoolTest, CreateFailsInAMissingDirectory) {
  EXPECT_FALSE(LogSpool::Create((dir_ / "no" / "such" / "a.log").string()).ok());
  // A file where the directory should be: no spool either.
  std::ofstream(dir_ / "in-the-way") << "x";
  EXPECT_FALSE(LogSpool::Create((dir_ / "in-the-way" / "a.log").string()).ok());
}

TEST_F(LogSpoolTest, AnAttemptThatPrintsNothingMakesNoFile) {
  EXPECT_FALSE(fs::exists(dir_ / "a.log"));
  ASSERT_TRUE(spool_->Append("").ok());
  EXPECT_FALSE(fs::exists(dir_ / "a.log"));
  EXPECT_TRUE(spool_->Sync().ok());
  EXPECT_EQ(spool_->fd(), -1);
  EXPECT_EQ(*spool_->Read(0, 10), "");
  EXPECT_EQ(spool_->Ack(5), 0u);
  // Kept and reopened as a restarted agent does: an empty log needs no file.
  spool_->Keep();
  spool_.reset();
  auto reopened = LogSpool::Open((dir_ / "a.log").string(), 0);
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ((*reopened)->held(), 0u);
  EXPECT_EQ(*(*reopened)->Read(0, 10), "");
  // The first byte makes the file.
  ASSERT_TRUE((*reopened)->Append("x").ok());
  EXPECT_TRUE(fs::exists(dir_ / "a.log"));
  EXPECT_EQ(FileSize(), 1u);
  reopened->reset();
  EXPECT_FALSE(fs::exists(dir_ / "a.log"));
}

TEST_F(LogSpoolTest, TheFirstAppendFailsWhenTheFileCannotBeMade) {
  fs::remove_all(dir_);  // the directory went after Create
  EXPECT_FALSE(spool_->Append("lost").ok());
  EXPECT_EQ(spool_->total(), 0u);  // all or nothing
  fs::create_directories(dir_);
  ASSERT_TRUE(spool_->Append("kept").ok());
  EXPECT_EQ(ReadAll(0), "kept");
}

TEST(SpoolBudgetTest, RoomUntilTheBoundThenWaitsUntilReleased) {
  SpoolBudget budget(1000);
  EXPECT_TRUE(budget.WaitForRoom(absl::ZeroDuration()));
  budget.Add(999);
  EXPECT_TRUE(budget.WaitForRoom(absl::ZeroDuration()));
  budget.Add(1);
  EXPECT_TRUE(budget.Full());
  EXPECT_FALSE(budget.WaitForRoom(absl::Milliseconds(20)));
  absl::Notification waiting;
  bool room = false;
  std::thread waiter([&] {
    waiting.Notify();
    room = budget.WaitForRoom(absl::Seconds(30));
  });
  waiting.WaitForNotification();
  budget.Add(-500);  // an acknowledgement frees room: the waiter wakes at once
  waiter.join();
  EXPECT_TRUE(room);
  EXPECT_FALSE(budget.Full());
  EXPECT_EQ(budget.used(), 500);
}

TEST(SpoolBudgetTest, ZeroMeansNoBound) {
  SpoolBudget budget(0);
  budget.Add(int64_t{1} << 50);
  EXPECT_FALSE(budget.Full());
  EXPECT_TRUE(budget.WaitForRoom(absl::ZeroDuration()));
}

}  // namespace
}  // namespace musafarm::agent
