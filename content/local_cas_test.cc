#include "content/local_cas.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "content/digest.h"
#include "content/packer.h"
#include "gtest/gtest.h"

namespace musafarm::content {
namespace {

namespace fs = std::filesystem;

// Serves the blobs of a packed tree, counting what it is asked for.
class PackedSource final : public BlobSource {
 public:
  explicit PackedSource(const PackedTree& tree) : tree_(tree) {}
  absl::StatusOr<std::string> Fetch(const v1::Digest& d) override {
    ++fetches;
    auto it = tree_.blobs.find(d.sha256());
    if (it == tree_.blobs.end()) return absl::NotFoundError(ShortDigest(d));
    if (it->second.path.empty()) return it->second.bytes;
    std::ifstream in(it->second.path, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
  }
  absl::Status FetchToFile(const v1::Digest& d, const std::string& path) override {
    absl::StatusOr<std::string> bytes = Fetch(d);
    if (!bytes.ok()) return bytes.status();
    std::ofstream(path, std::ios::binary) << *bytes;
    return absl::OkStatus();
  }
  int fetches = 0;

 private:
  const PackedTree& tree_;
};

std::string Read(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(LocalCasTest, MaterializesByHardLinksAndACachedTreeCostsNothing) {
  const fs::path base = fs::path(::testing::TempDir()) / "local_cas_test";
  fs::remove_all(base);
  const fs::path src = base / "src";
  fs::create_directories(src / "sub");
  std::ofstream(src / "a.txt") << "same";
  std::ofstream(src / "sub" / "b.txt") << "same";
  std::ofstream(src / "run.sh") << "#!/bin/sh\n";
  fs::permissions(src / "run.sh", fs::perms::owner_all);
  fs::create_symlink("../a.txt", src / "sub" / "link");
  fs::create_directories(src / "empty");
  absl::StatusOr<PackedTree> tree = PackDirectory(src.string());
  ASSERT_TRUE(tree.ok()) << tree.status();

  PackedSource source(*tree);
  LocalCas cas((base / "cas").string(), int64_t{1} << 30);
  absl::StatusOr<MaterializeStats> first = cas.Materialize(tree->root, source, (base / "t1").string());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->files, 3);
  EXPECT_EQ(Read(base / "t1" / "sub" / "b.txt"), "same");
  EXPECT_EQ(fs::read_symlink(base / "t1" / "sub" / "link"), "../a.txt");
  EXPECT_TRUE(fs::is_directory(base / "t1" / "empty"));
  struct stat st;
  ASSERT_EQ(::stat((base / "t1" / "a.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);
  EXPECT_GE(st.st_nlink, 3u);  // the cache's name, a.txt and sub/b.txt: one inode
  ASSERT_EQ(::stat((base / "t1" / "run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0555u);

  const int fetched = source.fetches;
  absl::StatusOr<MaterializeStats> second = cas.Materialize(tree->root, source, (base / "t2").string());
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(source.fetches, fetched);  // no network for a cached tree
  EXPECT_EQ(second->blobs_fetched, 0);
  EXPECT_EQ(Read(base / "t2" / "run.sh"), "#!/bin/sh\n");
  // An existing destination is refused rather than merged into.
  EXPECT_FALSE(cas.Materialize(tree->root, source, (base / "t2").string()).ok());
}

TEST(LocalCasTest, CacheIsBoundedAndEvictionKeepsMaterializedTrees) {
  const fs::path base = fs::path(::testing::TempDir()) / "local_cas_bound";
  fs::remove_all(base);
  fs::create_directories(base / "src");
  std::ofstream(base / "src" / "big", std::ios::binary) << std::string(10000, 'x');
  absl::StatusOr<PackedTree> tree = PackDirectory((base / "src").string());
  ASSERT_TRUE(tree.ok());
  PackedSource source(*tree);
  LocalCas cas((base / "cas").string(), 5000);
  ASSERT_TRUE(cas.Materialize(tree->root, source, (base / "t").string()).ok());
  EXPECT_LE(cas.CachedBytes(), 5000);
  EXPECT_GE(cas.evicted(), 1);
  EXPECT_EQ(Read(base / "t" / "big"), std::string(10000, 'x'));
}

}  // namespace
}  // namespace musafarm::content
