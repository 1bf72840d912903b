// The BlobStore conformance suite: what every content store backend must do
// (uploads verified and resumable, reads verified with a corrupt blob
// deleted, the size limit, pins and GC), run against each of them: files with
// an SQLite index (LocalBlobStore), and PostgreSQL (PostgresBlobStore) in the
// run's cluster. A new backend joins with one line at the bottom.
#include <fstream>
#include <functional>
#include <ostream>

#include "content/digest.h"
#include "content/tree.h"
#include "coordinator/local_blob_store.h"
#include "coordinator/pg_connection.h"
#include "coordinator/postgres_blob_store.h"
#include "coordinator/store.h"
#include "coordinator/store_test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"
#include "tests/support/private_postgres.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;

// How to open one backend.
struct BlobStoreBackend {
  std::string name;
  // Opens the store kept under `dir`, a directory the test owns; opening the
  // same `dir` again is a coordinator restart.
  std::function<absl::StatusOr<std::unique_ptr<BlobStore>>(const std::string& dir,
                                                           int64_t max_bytes, const Clock* clock)>
      open;
  // Replaces the stored bytes of the blob `sha256` (behind the store's back).
  std::function<void(const std::string& dir, BlobStore& store, const std::string& sha256,
                     const std::string& bytes)>
      corrupt;
};

void PrintTo(const BlobStoreBackend& backend, std::ostream* os) { *os << backend.name; }

class BlobStoreConformanceTest : public ::testing::TestWithParam<BlobStoreBackend> {
 protected:
  void SetUp() override { Reopen(int64_t{1} << 30); }

  void Reopen(int64_t max_bytes) {
    blobs_.reset();
    absl::StatusOr<std::unique_ptr<BlobStore>> b = GetParam().open(dir_.path(), max_bytes, &clock_);
    ASSERT_TRUE(b.ok()) << b.status();
    blobs_ = *std::move(b);
  }

  absl::Status Put(absl::string_view bytes) {
    absl::StatusOr<std::unique_ptr<BlobUpload>> up = blobs_->StartWrite(content::DigestOf(bytes), 0);
    if (!up.ok()) return up.status();
    if (absl::Status s = (*up)->Append(bytes); !s.ok()) return s;
    return (*up)->Finish();
  }

  absl::StatusOr<std::string> Get(const v1::Digest& d) { return blobs_->ReadSmall(d, 1 << 30); }

  bool Missing(const v1::Digest& d) {
    absl::StatusOr<std::vector<v1::Digest>> m = blobs_->FindMissing({d});
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() && !m->empty();
  }

  store_testing::TempDir dir_;
  testing::FakeClock clock_;
  std::unique_ptr<BlobStore> blobs_;
};

TEST_P(BlobStoreConformanceTest, WrittenBlobIsFoundAndReadBack) {
  const v1::Digest d = content::DigestOf("hello");
  EXPECT_TRUE(Missing(d));
  ASSERT_TRUE(Put("hello").ok());
  EXPECT_FALSE(Missing(d));
  v1::Digest other_size = d;
  other_size.set_size_bytes(6);
  EXPECT_TRUE(Missing(other_size));
  absl::StatusOr<std::string> back = Get(d);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, "hello");
  absl::StatusOr<BlobWriteState> state = blobs_->QueryWrite(d);
  ASSERT_TRUE(state.ok());
  EXPECT_TRUE(state->complete);
  EXPECT_EQ(blobs_->StartWrite(d, 0).status().code(), absl::StatusCode::kAlreadyExists);
  // A reopened store still has it: the index is on disk.
  Reopen(int64_t{1} << 30);
  EXPECT_FALSE(Missing(d));
}

TEST_P(BlobStoreConformanceTest, MismatchedBytesAreRefusedByDigest) {
  v1::Digest d = content::DigestOf("right");
  absl::StatusOr<std::unique_ptr<BlobUpload>> up = blobs_->StartWrite(d, 0);
  ASSERT_TRUE(up.ok());
  ASSERT_TRUE((*up)->Append("wrong").ok());
  absl::Status s = (*up)->Finish();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr(content::ShortDigest(d) + " refused: its bytes hash to"));
  up->reset();
  EXPECT_TRUE(Missing(d));
  EXPECT_EQ(blobs_->QueryWrite(d)->committed_size, 0);  // the bad bytes are not kept
  // Past its size is refused at once.
  absl::StatusOr<std::unique_ptr<BlobUpload>> again = blobs_->StartWrite(d, 0);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->Append("far too long").code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(BlobStoreConformanceTest, InterruptedUploadResumesAtItsCommittedSize) {
  const std::string bytes(300000, 'q');
  const v1::Digest d = content::DigestOf(bytes);
  {
    absl::StatusOr<std::unique_ptr<BlobUpload>> up = blobs_->StartWrite(d, 0);
    ASSERT_TRUE(up.ok());
    ASSERT_TRUE((*up)->Append(absl::string_view(bytes).substr(0, 100000)).ok());
    // A second writer of the same blob meanwhile is told to wait.
    EXPECT_EQ(blobs_->StartWrite(d, 0).status().code(), absl::StatusCode::kAborted);
  }  // the connection dropped: the partial bytes stay
  absl::StatusOr<BlobWriteState> state = blobs_->QueryWrite(d);
  ASSERT_TRUE(state.ok());
  EXPECT_FALSE(state->complete);
  EXPECT_EQ(state->committed_size, 100000);
  absl::Status wrong = blobs_->StartWrite(d, 5).status();
  EXPECT_EQ(wrong.code(), absl::StatusCode::kOutOfRange);
  EXPECT_THAT(wrong.message(), HasSubstr("holds 100000 bytes"));
  absl::StatusOr<std::unique_ptr<BlobUpload>> up = blobs_->StartWrite(d, 100000);
  ASSERT_TRUE(up.ok()) << up.status();
  ASSERT_TRUE((*up)->Append(absl::string_view(bytes).substr(100000)).ok());
  ASSERT_TRUE((*up)->Finish().ok());
  EXPECT_EQ(*Get(d), bytes);
}

TEST_P(BlobStoreConformanceTest, CorruptBlobIsAnErrorOnReadAndIsDeleted) {
  ASSERT_TRUE(Put("precious").ok());
  const v1::Digest d = content::DigestOf("precious");
  GetParam().corrupt(dir_.path(), *blobs_, d.sha256(), "PRECIOUS");
  absl::StatusOr<std::string> back = Get(d);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(back.status().message(), HasSubstr(content::ShortDigest(d)));
  EXPECT_TRUE(Missing(d));  // gone, so the next submit uploads it again
  ASSERT_TRUE(Put("precious").ok());
  EXPECT_EQ(*Get(d), "precious");
}

TEST_P(BlobStoreConformanceTest, SizeLimitRefusesAnUploadThatWouldPassIt) {
  Reopen(10);
  absl::Status s = blobs_->StartWrite(content::DigestOf("bigger than ten"), 0).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("would pass its limit of 10 B (--blob-store-bytes)"));
}

// Issue 17, item 2: over --blob-store-bytes, an upload first makes room from
// unreferenced blobs, oldest use first, within their grace; one that cannot
// fit even so is refused naming the limit, and nothing is deleted for it; a
// blob a pinned tree reaches is never deleted.
TEST_P(BlobStoreConformanceTest, OverTheLimitUnreferencedBlobsGoOldestFirstAndPinnedOnesNever) {
  ASSERT_TRUE(Put("kept-file").ok());
  v1::Directory root;
  v1::FileNode* f = root.add_files();
  f->set_name("k");
  *f->mutable_digest() = content::DigestOf("kept-file");
  const std::string root_blob = content::SerializeDirectory(root);
  ASSERT_TRUE(Put(root_blob).ok());
  ASSERT_TRUE(blobs_->Pin("j1", {content::DigestOf(root_blob)}).ok());
  ASSERT_TRUE(Put("old").ok());
  clock_.Advance(absl::Hours(1));
  ASSERT_TRUE(Put("new").ok());
  const int64_t full = static_cast<int64_t>(root_blob.size()) + 9 + 3 + 3;
  Reopen(full);

  // 3 bytes more: "old" makes room, "new" stays.
  ASSERT_TRUE(Put("abc").ok());
  EXPECT_TRUE(Missing(content::DigestOf("old")));
  EXPECT_FALSE(Missing(content::DigestOf("new")));
  // 10 bytes: the unreferenced blobs ("new", "abc") hold only 6; refused,
  // naming the limit, and they stay.
  absl::Status s = blobs_->StartWrite(content::DigestOf("ten bytes!"), 0).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("would pass its limit of ", full, " B")));
  EXPECT_FALSE(Missing(content::DigestOf("new")));
  EXPECT_FALSE(Missing(content::DigestOf("abc")));

  // A lower limit (a restart with a smaller --blob-store-bytes): GC takes the
  // unreferenced blobs within their grace, oldest use first, down to it, and
  // never the pinned tree.
  clock_.Advance(absl::Minutes(1));
  ASSERT_FALSE(Missing(content::DigestOf("new")));  // now "abc" is the older use
  Reopen(full - 3);
  absl::StatusOr<BlobGcStats> gc = blobs_->CollectGarbage(clock_.Now(), absl::Hours(24));
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->deleted, 1);
  EXPECT_TRUE(Missing(content::DigestOf("abc")));
  Reopen(1);
  gc = blobs_->CollectGarbage(clock_.Now(), absl::Hours(24));
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->deleted, 1);  // "new"; the pinned tree stays, over the limit
  EXPECT_FALSE(Missing(content::DigestOf("kept-file")));
  EXPECT_FALSE(Missing(content::DigestOf(root_blob)));
}

TEST_P(BlobStoreConformanceTest, GcKeepsPinnedTreesAndRecentBlobs) {
  // A tree: root -> file "kept"; and a loose blob.
  ASSERT_TRUE(Put("kept").ok());
  v1::Directory root;
  v1::FileNode* f = root.add_files();
  f->set_name("k");
  *f->mutable_digest() = content::DigestOf("kept");
  const std::string root_blob = content::SerializeDirectory(root);
  ASSERT_TRUE(Put(root_blob).ok());
  const v1::Digest root_digest = content::DigestOf(root_blob);
  ASSERT_TRUE(Put("loose").ok());
  ASSERT_TRUE(blobs_->Pin("j1", {root_digest}).ok());

  // Within the grace period nothing goes.
  absl::StatusOr<BlobGcStats> gc = blobs_->CollectGarbage(clock_.Now(), absl::Hours(1));
  ASSERT_TRUE(gc.ok()) << gc.status();
  EXPECT_EQ(gc->deleted, 0);
  clock_.Advance(absl::Hours(2));
  gc = blobs_->CollectGarbage(clock_.Now(), absl::Hours(1));
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->deleted, 1);
  EXPECT_EQ(gc->freed_bytes, 5);
  EXPECT_TRUE(Missing(content::DigestOf("loose")));
  EXPECT_FALSE(Missing(content::DigestOf("kept")));  // FindMissing counts as a use
  // The job goes (retention): its tree is collected once the grace passes.
  ASSERT_TRUE(blobs_->Unpin("j1").ok());
  clock_.Advance(absl::Hours(2));
  gc = blobs_->CollectGarbage(clock_.Now(), absl::Hours(1));
  ASSERT_TRUE(gc.ok());
  EXPECT_EQ(gc->deleted, 2);
  EXPECT_EQ(gc->kept, 0);
}

TEST_P(BlobStoreConformanceTest, CheckTreeCompleteNamesTheFirstMissingFile) {
  v1::Directory sub;
  v1::FileNode* f = sub.add_files();
  f->set_name("gone.txt");
  *f->mutable_digest() = content::DigestOf("never uploaded");
  const std::string sub_blob = content::SerializeDirectory(sub);
  ASSERT_TRUE(Put(sub_blob).ok());
  v1::Directory root;
  v1::DirectoryNode* dn = root.add_dirs();
  dn->set_name("src");
  *dn->mutable_digest() = content::DigestOf(sub_blob);
  const std::string root_blob = content::SerializeDirectory(root);
  const v1::Digest root_digest = content::DigestOf(root_blob);

  absl::Status s = CheckTreeComplete(*blobs_, root_digest, "input 'ctx'").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("input 'ctx': directory blob"));
  ASSERT_TRUE(Put(root_blob).ok());
  s = CheckTreeComplete(*blobs_, root_digest, "input 'ctx'").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("of 'src/gone.txt' is not in the content store"));
  ASSERT_TRUE(Put("never uploaded").ok());
  absl::StatusOr<content::TreeStats> stats = CheckTreeComplete(*blobs_, root_digest, "input 'ctx'");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files, 1);
  EXPECT_EQ(stats->bytes, 14);
}

// Several chunks of every backend, streamed both ways, resumed mid-chunk,
// and read from an offset.
TEST_P(BlobStoreConformanceTest, LargeBlobsStreamInPiecesAndResumeAnywhere) {
  std::string bytes;
  for (size_t i = 0; bytes.size() < (3u << 20) + 777; ++i) {
    bytes.push_back(static_cast<char>((i * 131 + i / 4093) & 0xff));
  }
  const v1::Digest d = content::DigestOf(bytes);
  const size_t cut = (1u << 20) + 4321;
  {
    absl::StatusOr<std::unique_ptr<BlobUpload>> up = blobs_->StartWrite(d, 0);
    ASSERT_TRUE(up.ok()) << up.status();
    for (size_t at = 0; at < cut; at += 65536) {
      ASSERT_TRUE((*up)->Append(absl::string_view(bytes).substr(at, std::min<size_t>(65536, cut - at))).ok());
    }
    EXPECT_EQ((*up)->committed_size(), static_cast<int64_t>(cut));
  }  // interrupted
  Reopen(int64_t{1} << 30);  // and the coordinator restarted
  absl::StatusOr<BlobWriteState> state = blobs_->QueryWrite(d);
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->committed_size, static_cast<int64_t>(cut));
  absl::StatusOr<std::unique_ptr<BlobUpload>> up = blobs_->StartWrite(d, state->committed_size);
  ASSERT_TRUE(up.ok()) << up.status();
  ASSERT_TRUE((*up)->Append(absl::string_view(bytes).substr(cut)).ok());
  ASSERT_TRUE((*up)->Finish().ok());
  up->reset();

  absl::StatusOr<std::unique_ptr<BlobReader>> r = blobs_->StartRead(d, 1000001);
  ASSERT_TRUE(r.ok()) << r.status();
  std::string back;
  for (;;) {
    absl::StatusOr<std::string> piece = (*r)->Next(100000);
    ASSERT_TRUE(piece.ok()) << piece.status();
    if (piece->empty()) break;
    EXPECT_LE(piece->size(), 100000u);
    back += *piece;
  }
  EXPECT_TRUE(back == bytes.substr(1000001)) << "read back differs";
  absl::StatusOr<std::string> whole = Get(d);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_TRUE(*whole == bytes) << "read back differs";
}

std::string BackendName(const ::testing::TestParamInfo<BlobStoreBackend>& info) {
  return info.param.name;
}

// --- backends: one line each -------------------------------------------------
INSTANTIATE_TEST_SUITE_P(
    Local, BlobStoreConformanceTest,
    ::testing::Values(BlobStoreBackend{
        "local",
        [](const std::string& dir, int64_t max_bytes,
           const Clock* clock) -> absl::StatusOr<std::unique_ptr<BlobStore>> {
          // The coordinator's store migrates the file; the blob index shares it.
          const std::string db = dir + "/farm.db";
          absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(db);
          if (!store.ok()) return store.status();
          absl::StatusOr<std::unique_ptr<LocalBlobStore>> b =
              LocalBlobStore::Open({dir + "/blobs", db, max_bytes, clock});
          if (!b.ok()) return b.status();
          return std::unique_ptr<BlobStore>(*std::move(b));
        },
        [](const std::string&, BlobStore& store, const std::string& sha256,
           const std::string& bytes) {
          std::ofstream(static_cast<LocalBlobStore&>(store).BlobPath(sha256),
                        std::ios::binary | std::ios::trunc)
              << bytes;
        }}),
    BackendName);

INSTANTIATE_TEST_SUITE_P(
    Postgres, BlobStoreConformanceTest,
    ::testing::Values(BlobStoreBackend{
        "postgres",
        [](const std::string& dir, int64_t max_bytes,
           const Clock* clock) -> absl::StatusOr<std::unique_ptr<BlobStore>> {
          absl::StatusOr<std::string> url = test_support::TestDatabaseFor(dir);
          if (!url.ok()) return url.status();
          absl::StatusOr<std::unique_ptr<PostgresBlobStore>> b =
              PostgresBlobStore::Open({*url, max_bytes, clock});
          if (!b.ok()) return b.status();
          return std::unique_ptr<BlobStore>(*std::move(b));
        },
        [](const std::string& dir, BlobStore&, const std::string& sha256,
           const std::string& bytes) {
          absl::StatusOr<std::string> url = test_support::TestDatabaseFor(dir);
          ASSERT_TRUE(url.ok()) << url.status();
          absl::StatusOr<std::unique_ptr<pg::Connection>> conn = pg::Connection::Open(*url);
          ASSERT_TRUE(conn.ok()) << conn.status();
          absl::StatusOr<pg::Result> r = (*conn)->RunOnce(
              "UPDATE blob_chunks SET bytes = $2 WHERE sha256 = $1",
              pg::Params().Text(sha256).Bytes(bytes), "corrupt");
          ASSERT_TRUE(r.ok()) << r.status();
          ASSERT_EQ(r->affected(), 1);
        }}),
    BackendName);

}  // namespace
}  // namespace musafarm::coordinator
