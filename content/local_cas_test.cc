#include "content/local_cas.h"

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

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
    if (slow) std::this_thread::sleep_for(std::chrono::microseconds(200));
    absl::StatusOr<std::string> bytes = Fetch(d);
    if (!bytes.ok()) return bytes.status();
    std::ofstream(path, std::ios::binary) << *bytes;
    return absl::OkStatus();
  }
  std::atomic<int> fetches{0};
  bool slow = false;

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

// Tasks starting together on an empty cache materialize the same tree at
// once (three fixture stages on one agent did): each gets the whole tree.
TEST(LocalCasTest, ConcurrentMaterializationsOfOneTreeEachGetItAll) {
  const fs::path base = fs::path(::testing::TempDir()) / "local_cas_concurrent";
  fs::remove_all(base);
  const fs::path src = base / "src";
  fs::create_directories(src / "sub");
  for (int i = 0; i < 12; ++i) {
    std::ofstream(src / ("f" + std::to_string(i))) << "file " << i;
    std::ofstream(src / "sub" / ("g" + std::to_string(i))) << "file " << i;
  }
  std::ofstream(src / "run.sh") << "file 3";
  fs::permissions(src / "run.sh", fs::perms::owner_all);
  absl::StatusOr<PackedTree> tree = PackDirectory(src.string());
  ASSERT_TRUE(tree.ok()) << tree.status();
  for (int round = 0; round < 20; ++round) {
    PackedSource source(*tree);
    source.slow = true;
    const fs::path dir = base / ("round" + std::to_string(round));
    LocalCas cas((dir / "cas").string(), int64_t{1} << 30);
    std::vector<absl::Status> results(4);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        absl::StatusOr<MaterializeStats> made =
            cas.Materialize(tree->root, source, (dir / ("t" + std::to_string(t))).string());
        results[t] = made.status();
      });
    }
    for (std::thread& t : threads) t.join();
    for (int t = 0; t < 4; ++t) {
      ASSERT_TRUE(results[t].ok()) << "round " << round << " thread " << t << ": " << results[t];
      EXPECT_EQ(Read(dir / ("t" + std::to_string(t)) / "sub" / "g7"), "file 7");
    }
  }
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
