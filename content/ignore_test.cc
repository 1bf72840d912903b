#include "content/ignore.h"

#include "gtest/gtest.h"

namespace musafarm::content {
namespace {

IgnoreRules Rules(absl::string_view text) {
  absl::StatusOr<IgnoreRules> r = IgnoreRules::Parse(text, ".dockerignore");
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : IgnoreRules();
}

TEST(GlobMatchTest, Wildcards) {
  EXPECT_TRUE(GlobMatch("*.o", "a.o"));
  EXPECT_FALSE(GlobMatch("*.o", "d/a.o"));  // '*' stops at '/'
  EXPECT_TRUE(GlobMatch("d/?.o", "d/a.o"));
  EXPECT_FALSE(GlobMatch("d/?.o", "d/ab.o"));
  EXPECT_TRUE(GlobMatch("[a-c]x", "bx"));
  EXPECT_FALSE(GlobMatch("[^a-c]x", "bx"));
  EXPECT_TRUE(GlobMatch("[^a-c]x", "dx"));
  EXPECT_TRUE(GlobMatch("\\*x", "*x"));
  EXPECT_FALSE(GlobMatch("\\*x", "ax"));
}

TEST(GlobMatchTest, DoubleStar) {
  EXPECT_TRUE(GlobMatch("**/*.o", "a.o"));
  EXPECT_TRUE(GlobMatch("**/*.o", "x/y/a.o"));
  EXPECT_TRUE(GlobMatch("a/**/b", "a/b"));
  EXPECT_TRUE(GlobMatch("a/**/b", "a/x/y/b"));
  EXPECT_FALSE(GlobMatch("a/**/b", "a/x/yb"));
  EXPECT_TRUE(GlobMatch("a/**", "a/x/y"));
  EXPECT_TRUE(GlobMatch("**", "anything/at/all"));
}

TEST(IgnoreRulesTest, GitIsAlwaysExcluded) {
  IgnoreRules none;
  EXPECT_TRUE(none.Excluded(".git"));
  EXPECT_TRUE(none.Excluded(".git/config"));
  EXPECT_FALSE(none.Excluded(".gitignore"));
  EXPECT_FALSE(none.Excluded("src/.git-thing"));
  // An exception cannot put it back.
  EXPECT_TRUE(Rules("!.git\n!.git/config\n").Excluded(".git/config"));
  EXPECT_FALSE(Rules("!.git\n").MayIncludeUnder(".git"));
}

TEST(IgnoreRulesTest, DirectoryPatternExcludesItsContents) {
  IgnoreRules r = Rules("# build outputs\n\n  build  \n/dist/\n./tmp//x\n");
  EXPECT_TRUE(r.Excluded("build"));
  EXPECT_TRUE(r.Excluded("build/obj/a.o"));
  EXPECT_TRUE(r.Excluded("dist/wheel.whl"));
  EXPECT_TRUE(r.Excluded("tmp/x"));
  EXPECT_FALSE(r.Excluded("src/build.cc"));
  EXPECT_FALSE(r.Excluded("src/build/a"));  // patterns are anchored at the root
  EXPECT_FALSE(r.Excluded("# build outputs"));
}

TEST(IgnoreRulesTest, ExceptionsLastMatchWins) {
  IgnoreRules r = Rules("*.md\n!README.md\ndocs\n!docs/keep/**\ndocs/keep/secret.txt\n");
  EXPECT_TRUE(r.Excluded("CHANGES.md"));
  EXPECT_FALSE(r.Excluded("README.md"));
  EXPECT_TRUE(r.Excluded("docs/a.txt"));
  EXPECT_FALSE(r.Excluded("docs/keep/b.txt"));
  EXPECT_FALSE(r.Excluded("docs/keep/deep/c.txt"));
  EXPECT_TRUE(r.Excluded("docs/keep/secret.txt"));
  EXPECT_TRUE(r.MayIncludeUnder("docs"));
}

TEST(IgnoreRulesTest, MayIncludeUnderOnlyWhenAnExceptionCouldMatch) {
  IgnoreRules r = Rules("build\nlogs\n!logs/keep.log\n");
  EXPECT_FALSE(r.MayIncludeUnder("build"));
  EXPECT_TRUE(r.MayIncludeUnder("logs"));
  EXPECT_FALSE(Rules("build\n").MayIncludeUnder("build"));
}

TEST(IgnoreRulesTest, MalformedPatternNamesFileAndLine) {
  absl::StatusOr<IgnoreRules> r = IgnoreRules::Parse("ok\n[abc\n", "ctx/.dockerignore");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("ctx/.dockerignore:2: pattern '[abc'"), std::string::npos)
      << r.status();
}

}  // namespace
}  // namespace musafarm::content
