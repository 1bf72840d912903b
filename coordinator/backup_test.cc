#include "coordinator/backup.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "coordinator/store.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

namespace fs = std::filesystem;

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void Write(const fs::path& p, const std::string& data) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << data;
}

JoinToken Token(const std::string& id) {
  JoinToken t;
  t.id = id;
  t.salt = "00";
  t.secret_hash = std::string(64, 'a');
  t.uses_left = 1;
  t.expire_time = absl::Now() + absl::Hours(1);
  t.created_at = absl::Now();
  return t;
}

class BackupTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ::testing::UnitTest::GetInstance()->current_test_info()->name();
    fs::remove_all(root_);
    data_ = root_ / "data";
    fs::create_directories(data_);
  }
  fs::path root_, data_;
};

TEST_F(BackupTest, SnapshotOfAnOpenStoreAndItsFilesRestoresByteIdentical) {
  // The store stays open during the backup, as under a running coordinator.
  auto store = OpenSqliteStore((data_ / "musafarm.db").string());
  ASSERT_TRUE(store.ok()) << store.status();
  ASSERT_TRUE((*store)->InsertJoinToken(Token("0000aaaa")).ok());
  std::string binary_log("line 1\n\0\xff raw bytes\n", 20);
  Write(data_ / "logs/1/dev/build/1.log", binary_log);
  Write(data_ / "logs/1/dev/build/1.artifacts/report.xml", "<xml/>");
  Write(data_ / "secrets.key", "c2VjcmV0");
  Write(data_ / "pki/ca.crt", "CERT");
  Write(data_ / "lock", "123\n");
  Write(data_ / "logs/1/dev/build/2.log.part", "half");  // an AtomicFile in progress

  std::ostringstream out;
  ASSERT_TRUE(BackupDataDir(data_.string(), (root_ / "bak").string(), out).ok());
  EXPECT_TRUE(absl::StrContains(out.str(), "4 file(s)")) << out.str();
  // Written after the snapshot: not in the backup.
  ASSERT_TRUE((*store)->InsertJoinToken(Token("0000bbbb")).ok());
  EXPECT_FALSE(fs::exists(root_ / "bak/lock"));
  EXPECT_FALSE(fs::exists(root_ / "bak/musafarm.db-wal"));
  EXPECT_FALSE(fs::exists(root_ / "bak/logs/1/dev/build/2.log.part"));
  struct stat st;
  ASSERT_EQ(::stat((root_ / "bak/secrets.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  const fs::path restored = root_ / "restored";
  ASSERT_TRUE(RestoreDataDir((root_ / "bak").string(), restored.string(), out).ok());
  EXPECT_EQ(Read(restored / "logs/1/dev/build/1.log"), binary_log);
  EXPECT_EQ(Read(restored / "logs/1/dev/build/1.artifacts/report.xml"), "<xml/>");
  EXPECT_EQ(Read(restored / "secrets.key"), "c2VjcmV0");
  EXPECT_EQ(Read(restored / "pki/ca.crt"), "CERT");
  auto back = OpenSqliteStore((restored / "musafarm.db").string());
  ASSERT_TRUE(back.ok()) << back.status();
  auto tokens = (*back)->LoadJoinTokens();
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  ASSERT_EQ(tokens->size(), 1u);
  EXPECT_EQ((*tokens)[0].id, "0000aaaa");
}

TEST_F(BackupTest, RefusesANonEmptyDestinationAndAMissingDatabase) {
  std::ostringstream out;
  absl::Status s = BackupDataDir(data_.string(), (root_ / "bak").string(), out);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "no musafarm.db")) << s;
  ASSERT_TRUE(OpenSqliteStore((data_ / "musafarm.db").string()).ok());
  Write(root_ / "full/x", "x");
  s = BackupDataDir(data_.string(), (root_ / "full").string(), out);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "not an empty directory")) << s;
}

TEST_F(BackupTest, RestoreRefusesAnUnfinishedOrAlteredBackupAndAnInUseDataDir) {
  ASSERT_TRUE(OpenSqliteStore((data_ / "musafarm.db").string()).ok());
  Write(data_ / "logs/1/a/1.log", "hello\n");
  std::ostringstream out;
  ASSERT_TRUE(BackupDataDir(data_.string(), (root_ / "bak").string(), out).ok());

  // Into the live data dir: refused, nothing touched.
  absl::Status s = RestoreDataDir((root_ / "bak").string(), data_.string(), out);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "already holds musafarm.db")) << s;

  // A byte changed: refused before anything is written.
  Write(root_ / "bak/logs/1/a/1.log", "hellO\n");
  s = RestoreDataDir((root_ / "bak").string(), (root_ / "r1").string(), out);
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "logs/1/a/1.log differs from the manifest")) << s;
  EXPECT_FALSE(fs::exists(root_ / "r1"));

  // No manifest (a backup cut short): not a backup.
  fs::remove(root_ / "bak/MANIFEST");
  s = RestoreDataDir((root_ / "bak").string(), (root_ / "r2").string(), out);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_TRUE(absl::StrContains(s.message(), "not a musafarm backup")) << s;
}

}  // namespace
}  // namespace musafarm::coordinator
