#include "content/tree.h"

#include <map>

#include "content/digest.h"
#include "gtest/gtest.h"

namespace musafarm::content {
namespace {

v1::FileNode* AddFile(v1::Directory* d, const std::string& name, absl::string_view bytes) {
  v1::FileNode* f = d->add_files();
  f->set_name(name);
  *f->mutable_digest() = DigestOf(bytes);
  return f;
}

TEST(TreeTest, SerializationIsDeterministicAndNamesTheDirectory) {
  v1::Directory a;
  AddFile(&a, "x", "1");
  AddFile(&a, "y", "2");
  v1::Directory b;
  AddFile(&b, "x", "1");
  AddFile(&b, "y", "2");
  EXPECT_EQ(SerializeDirectory(a), SerializeDirectory(b));
  EXPECT_EQ(DigestOf(SerializeDirectory(a)).sha256(), DigestOf(SerializeDirectory(b)).sha256());
  b.mutable_files(1)->set_executable(true);
  EXPECT_NE(DigestOf(SerializeDirectory(a)).sha256(), DigestOf(SerializeDirectory(b)).sha256());
}

TEST(TreeTest, ParseRefusesUnsafeOrUnsortedEntries) {
  auto refused = [](const v1::Directory& d, int depth, absl::string_view why) {
    absl::StatusOr<v1::Directory> p = ParseDirectory(SerializeDirectory(d), depth, "dir 'a'");
    ASSERT_FALSE(p.ok()) << why;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(p.status().message().find(why), std::string::npos) << p.status();
  };
  v1::Directory unsorted;
  AddFile(&unsorted, "b", "");
  AddFile(&unsorted, "a", "");
  refused(unsorted, 0, "not sorted");
  v1::Directory dotdot;
  AddFile(&dotdot, "..", "");
  refused(dotdot, 0, "not a single path component");
  v1::Directory slash;
  AddFile(&slash, "a/b", "");
  refused(slash, 0, "not a single path component");
  v1::Directory twice;
  AddFile(&twice, "a", "");
  twice.add_dirs()->set_name("a");
  *twice.mutable_dirs(0)->mutable_digest() = DigestOf("");
  refused(twice, 0, "appears twice");
  v1::Directory escape;
  v1::SymlinkNode* s = escape.add_symlinks();
  s->set_name("l");
  s->set_target("../x");
  refused(escape, 0, "points outside the tree");
  EXPECT_TRUE(ParseDirectory(SerializeDirectory(escape), 1, "d").ok());  // one level down: fine
  s->set_target("/etc/passwd");
  refused(escape, 3, "points outside the tree");
  EXPECT_FALSE(ParseDirectory("\xff\xff", 0, "d").ok());
}

TEST(TreeTest, SymlinkStaysInside) {
  EXPECT_TRUE(SymlinkStaysInside("a/b", 0));
  EXPECT_TRUE(SymlinkStaysInside("./a", 0));
  EXPECT_FALSE(SymlinkStaysInside("..", 0));
  EXPECT_FALSE(SymlinkStaysInside("a/../../b", 0));  // climbs out before coming back
  EXPECT_TRUE(SymlinkStaysInside("../b", 1));
  EXPECT_FALSE(SymlinkStaysInside("../../b", 1));
  EXPECT_FALSE(SymlinkStaysInside("/abs", 5));
  EXPECT_FALSE(SymlinkStaysInside("", 0));
}

TEST(TreeTest, WalkVisitsEveryDirectoryAndCounts) {
  std::map<std::string, std::string> blobs;
  auto put = [&](const v1::Directory& d) {
    std::string b = SerializeDirectory(d);
    v1::Digest dg = DigestOf(b);
    blobs[dg.sha256()] = b;
    return dg;
  };
  v1::Directory leaf;
  AddFile(&leaf, "f", "12345");
  v1::Directory root;
  AddFile(&root, "g", "abc");
  v1::DirectoryNode* sub = root.add_dirs();
  sub->set_name("sub");
  *sub->mutable_digest() = put(leaf);
  v1::Digest root_digest = put(root);
  std::vector<std::string> seen;
  TreeVisitor visit;
  visit.directory = [&](const std::string& path, const v1::Digest&, const v1::Directory&) {
    seen.push_back(path);
    return absl::OkStatus();
  };
  DirectoryFetcher fetch = [&](const v1::Digest& d) -> absl::StatusOr<std::string> {
    auto it = blobs.find(d.sha256());
    if (it == blobs.end()) return absl::NotFoundError(ShortDigest(d));
    return it->second;
  };
  absl::StatusOr<TreeStats> stats = WalkTree(root_digest, fetch, visit);
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files, 2);
  EXPECT_EQ(stats->bytes, 8);
  EXPECT_EQ(stats->directories, 2);
  EXPECT_EQ(seen, (std::vector<std::string>{"", "sub"}));
  blobs.erase(sub->digest().sha256());
  EXPECT_EQ(WalkTree(root_digest, fetch, visit).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace musafarm::content
