#include "content/packer.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "content/digest.h"
#include "content/tree.h"
#include "gtest/gtest.h"

namespace musafarm::content {
namespace {

namespace fs = std::filesystem;

class PackerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) /
            ("packer_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void Write(const std::string& rel, const std::string& bytes) {
    fs::path p = root_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
  }
  std::string root() const { return root_.string(); }

  fs::path root_;
};

TEST_F(PackerTest, ManifestIsWhatTheRulesLeaveIn) {
  Write(".dockerignore", "build\n*.log\n!keep.log\ndocs/**/*.tmp\n");
  Write("Dockerfile", "FROM scratch\n");
  Write("src/a.cc", "int a;\n");
  Write("build/out.o", "obj");
  Write("x.log", "noise");
  Write("keep.log", "kept");
  Write("docs/deep/er/n.tmp", "tmp");
  Write("docs/deep/er/n.md", "doc");
  Write(".git/HEAD", "ref: refs/heads/main\n");
  Write("sub/.git/config", "[core]\n");
  absl::StatusOr<PackedTree> t = PackDirectory(root());
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->manifest, (std::vector<std::string>{".dockerignore", "Dockerfile", "docs/deep/er/n.md",
                                                   "keep.log", "src/a.cc", "sub/.git/config"}));
  EXPECT_EQ(t->files, 6);
  // Only the top-level .git is the working copy's history; a nested one is a file like any other.
}

TEST_F(PackerTest, EqualTreesHaveEqualDigestsAndAChangeChangesTheRoot) {
  Write("a/b.txt", "same");
  Write("c.txt", "same");  // equal content: one blob
  absl::StatusOr<PackedTree> first = PackDirectory(root());
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<PackedTree> again = PackDirectory(root() + "/");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(first->root.sha256(), again->root.sha256());
  EXPECT_EQ(first->blobs.size(), 3u);  // one file blob, two directory blobs
  EXPECT_EQ(first->bytes, 8);
  Write("a/b.txt", "changed");
  absl::StatusOr<PackedTree> changed = PackDirectory(root());
  ASSERT_TRUE(changed.ok());
  EXPECT_NE(changed->root.sha256(), first->root.sha256());
}

TEST_F(PackerTest, KeepsExecutableBitAndSymlinks) {
  Write("run.sh", "#!/bin/sh\n");
  Write("data", "d");
  ASSERT_EQ(::chmod((root_ / "run.sh").c_str(), 0755), 0);
  fs::create_directory_symlink("sub", root_ / "link_dir");
  Write("sub/x", "x");
  fs::create_symlink("../data", root_ / "sub" / "up");
  absl::StatusOr<PackedTree> t = PackDirectory(root());
  ASSERT_TRUE(t.ok()) << t.status();
  const PackedBlob& root_blob = t->blobs.at(t->root.sha256());
  absl::StatusOr<v1::Directory> dir = ParseDirectory(root_blob.bytes, 0, "root");
  ASSERT_TRUE(dir.ok()) << dir.status();
  ASSERT_EQ(dir->files_size(), 2);
  EXPECT_EQ(dir->files(0).name(), "data");
  EXPECT_FALSE(dir->files(0).executable());
  EXPECT_EQ(dir->files(1).name(), "run.sh");
  EXPECT_TRUE(dir->files(1).executable());
  ASSERT_EQ(dir->symlinks_size(), 1);
  EXPECT_EQ(dir->symlinks(0).target(), "sub");
  EXPECT_EQ(t->manifest, (std::vector<std::string>{"data", "link_dir", "run.sh", "sub/up", "sub/x"}));
}

TEST_F(PackerTest, SymlinkLeavingTheRootIsRefusedByName) {
  Write("src/a", "a");
  fs::create_symlink("../../etc/passwd", root_ / "src" / "evil");
  absl::StatusOr<PackedTree> t = PackDirectory(root());
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("src/evil: symbolic link to '../../etc/passwd' points outside"),
            std::string::npos)
      << t.status();
  fs::remove(root_ / "src" / "evil");
  fs::create_symlink("/etc/passwd", root_ / "abs");
  EXPECT_NE(PackDirectory(root()).status().message().find("abs: symbolic link to '/etc/passwd'"),
            std::string::npos);
  // Excluded, it does not matter.
  Write(".dockerignore", "abs\n");
  EXPECT_TRUE(PackDirectory(root()).ok());
}

TEST_F(PackerTest, OverTheLimitIsRefusedBeforeHashingWithTheLimitNamed) {
  Write("big", std::string(5000, 'b'));
  PackOptions opts;
  opts.max_bytes = 4096;
  opts.limit_source = "the coordinator's --blob-store-bytes";
  absl::StatusOr<PackedTree> t = PackDirectory(root(), opts);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(t.status().message().find("over the limit of"), std::string::npos) << t.status();
  EXPECT_NE(t.status().message().find("4096 bytes, the coordinator's --blob-store-bytes"),
            std::string::npos)
      << t.status();
}

TEST_F(PackerTest, NotADirectoryAndSpecialFilesAreRefused) {
  Write("f", "x");
  EXPECT_NE(PackDirectory(root() + "/f").status().message().find("not a directory"),
            std::string::npos);
  EXPECT_FALSE(PackDirectory(root() + "/missing").ok());
  ASSERT_EQ(::mkfifo((root_ / "pipe").c_str(), 0600), 0);
  EXPECT_NE(PackDirectory(root()).status().message().find(
                "pipe: not a regular file, directory or symbolic link"),
            std::string::npos);
}

}  // namespace
}  // namespace musafarm::content
