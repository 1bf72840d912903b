// What the conformance suites cannot see of the log and content stores on
// PostgreSQL: their writes are fenced by the leader epoch like the Store's (a
// deposed coordinator writes no log byte and no blob), and a flush is one
// row per stream however many appends it carries.

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "content/digest.h"
#include "coordinator/pg_connection.h"
#include "coordinator/postgres_blob_store.h"
#include "coordinator/postgres_log_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/private_postgres.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;

class PostgresDataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::string> url = test_support::NewTestDatabase();
    ASSERT_TRUE(url.ok()) << url.status();
    url_ = *url;
    absl::StatusOr<std::unique_ptr<pg::Connection>> raw = pg::Connection::Open(url_);
    ASSERT_TRUE(raw.ok()) << raw.status();
    raw_ = *std::move(raw);
    ASSERT_TRUE(OpenPostgresLogStore(url_).ok());  // the schema
  }
  int64_t Count(const std::string& sql) {
    absl::StatusOr<pg::Result> r = raw_->RunOnce(sql, pg::Params(), "count");
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->Int(0, 0) : -1;
  }
  void SetEpoch(int64_t epoch) {
    ASSERT_TRUE(raw_->RunOnce(absl::StrCat("UPDATE leadership SET epoch = ", epoch), pg::Params(),
                              "bump")
                    .ok());
  }

  std::string url_;
  std::unique_ptr<pg::Connection> raw_;
};

TEST_F(PostgresDataTest, ADeposedCoordinatorWritesNoLogByteAndNoBlob) {
  SetEpoch(1);
  absl::StatusOr<std::unique_ptr<LogStore>> logs = OpenPostgresLogStore(url_, 1);
  ASSERT_TRUE(logs.ok()) << logs.status();
  absl::StatusOr<std::unique_ptr<PostgresBlobStore>> blobs =
      PostgresBlobStore::Open({url_, int64_t{1} << 30, RealClock::Get(), 1});
  ASSERT_TRUE(blobs.ok()) << blobs.status();
  ASSERT_TRUE((*logs)->Append("1/t", 1, 0, "before\n").ok());
  ASSERT_TRUE((*logs)->Flush().ok());  // the leader's epoch: lands

  SetEpoch(2);  // the takeover
  ASSERT_TRUE((*logs)->Append("1/t", 1, 7, "after\n").ok());  // accepted in memory only
  absl::Status flushed = (*logs)->Flush();
  EXPECT_EQ(flushed.code(), absl::StatusCode::kFailedPrecondition) << flushed;
  EXPECT_THAT(flushed.message(), HasSubstr("deposed: epoch 1 is no longer the leader's (now 2)"));
  const v1::Digest d = content::DigestOf("a blob");
  absl::StatusOr<std::unique_ptr<BlobUpload>> up = (*blobs)->StartWrite(d, 0);
  EXPECT_EQ(up.status().code(), absl::StatusCode::kFailedPrecondition) << up.status();

  EXPECT_EQ(Count("SELECT coalesce(sum(length(bytes)), 0) FROM log_chunks"), 7);
  EXPECT_EQ(Count("SELECT count(*) FROM blobs"), 0);
  // After a refused flush the store asks the table again: the agent resends
  // from what is stored.
  EXPECT_EQ((*logs)->Size("1/t", 1), 7u);
}

// Batching: many appends in one group are one row per stream, whatever their
// number, and a stream larger than a row is split at kMaxChunkBytes.
TEST_F(PostgresDataTest, AFlushWritesOneRowPerStreamUpToTheRowSize) {
  absl::StatusOr<std::unique_ptr<LogStore>> logs = OpenPostgresLogStore(url_);
  ASSERT_TRUE(logs.ok()) << logs.status();
  uint64_t at = 0;
  for (int i = 0; i < 1000; ++i) {
    const std::string line = absl::StrCat("line ", i, "\n");
    ASSERT_TRUE((*logs)->Append("1/a", 1, at, line).ok());
    at += line.size();
    ASSERT_TRUE((*logs)->Append("1/b", 1, at - line.size(), line).ok());
  }
  ASSERT_TRUE((*logs)->Flush().ok());
  EXPECT_EQ(Count("SELECT count(*) FROM log_chunks"), 2);
  const std::string big(PostgresLogStore::kMaxChunkBytes * 2 + 5, 'x');
  ASSERT_TRUE((*logs)->Append("1/c", 1, 0, big).ok());
  ASSERT_TRUE((*logs)->Flush().ok());
  EXPECT_EQ(Count("SELECT count(*) FROM log_chunks WHERE task_id = '1/c'"), 3);
  EXPECT_EQ(Count("SELECT max(length(bytes)) FROM log_chunks"),
            static_cast<int64_t>(PostgresLogStore::kMaxChunkBytes));
}

}  // namespace
}  // namespace musafarm::coordinator
