// LocalBlobStore on a real data directory and SQLite file: uploads verified
// and resumable, reads verified (a corrupt blob is deleted), pins and GC.
#include "coordinator/local_blob_store.h"

#include <fstream>

#include "content/digest.h"
#include "content/tree.h"
#include "coordinator/store.h"
#include "coordinator/store_test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;

class LocalBlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The coordinator's store migrates the file; the blob index shares it.
    absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(dir_.File("farm.db"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    Reopen(int64_t{1} << 30);
  }

  void Reopen(int64_t max_bytes) {
    blobs_.reset();
    absl::StatusOr<std::unique_ptr<LocalBlobStore>> b =
        LocalBlobStore::Open({dir_.File("blobs"), dir_.File("farm.db"), max_bytes, &clock_});
    ASSERT_TRUE(b.ok()) << b.status();
    blobs_ = *std::move(b);
  }

  absl::Status Put(absl::string_view bytes) {
    absl::StatusOr<std::unique_ptr<BlobUpload>> up = blobs_->StartWrite(content::DigestOf(bytes), 0);
    if (!up.ok()) return up.status();
    if (absl::Status s = (*up)->Append(bytes); !s.ok()) return s;
    return (*up)->Finish();
  }

  absl::StatusOr<std::string> Get(const v1::Digest& d) { return blobs_->ReadSmall(d, 1 << 20); }

  bool Missing(const v1::Digest& d) {
    absl::StatusOr<std::vector<v1::Digest>> m = blobs_->FindMissing({d});
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() && !m->empty();
  }

  store_testing::TempDir dir_;
  testing::FakeClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<LocalBlobStore> blobs_;
};

TEST_F(LocalBlobStoreTest, WrittenBlobIsFoundAndReadBack) {
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

TEST_F(LocalBlobStoreTest, MismatchedBytesAreRefusedByDigest) {
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

TEST_F(LocalBlobStoreTest, InterruptedUploadResumesAtItsCommittedSize) {
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

TEST_F(LocalBlobStoreTest, CorruptBlobIsAnErrorOnReadAndIsDeleted) {
  ASSERT_TRUE(Put("precious").ok());
  const v1::Digest d = content::DigestOf("precious");
  std::ofstream(blobs_->BlobPath(d.sha256()), std::ios::binary | std::ios::trunc) << "PRECIOUS";
  absl::StatusOr<std::string> back = Get(d);
  EXPECT_EQ(back.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(back.status().message(), HasSubstr(content::ShortDigest(d)));
  EXPECT_TRUE(Missing(d));  // gone, so the next submit uploads it again
  ASSERT_TRUE(Put("precious").ok());
  EXPECT_EQ(*Get(d), "precious");
}

TEST_F(LocalBlobStoreTest, SizeLimitRefusesAnUploadThatWouldPassIt) {
  Reopen(10);
  absl::Status s = blobs_->StartWrite(content::DigestOf("bigger than ten"), 0).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("would pass its limit of 10 B (--blob-store-bytes)"));
}

// Issue 17, item 2: over --blob-store-bytes, an upload first makes room from
// unreferenced blobs, oldest use first, within their grace; one that cannot
// fit even so is refused naming the limit, and nothing is deleted for it; a
// blob a pinned tree reaches is never deleted.
TEST_F(LocalBlobStoreTest, OverTheLimitUnreferencedBlobsGoOldestFirstAndPinnedOnesNever) {
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

TEST_F(LocalBlobStoreTest, GcKeepsPinnedTreesAndRecentBlobs) {
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

TEST_F(LocalBlobStoreTest, CheckTreeCompleteNamesTheFirstMissingFile) {
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

}  // namespace
}  // namespace musafarm::coordinator
