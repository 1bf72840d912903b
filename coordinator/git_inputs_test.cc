// Git inputs against real repositories: a file:// one made here, resolved
// with git ls-remote, fetched into the cache and imported into a
// LocalBlobStore. Credentials never reach the recorded source or a message.
#include "coordinator/git_inputs.h"

#include <sys/wait.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/subprocess.h"
#include "content/tree.h"
#include "coordinator/local_blob_store.h"
#include "coordinator/store.h"
#include "coordinator/store_test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

namespace fs = std::filesystem;

// Runs git in `dir`; its output (test plumbing, argv only).
std::string Git(const std::string& dir, std::vector<std::string> args) {
  args.insert(args.begin(), "git");
  EnvMap env = InheritedEnv();
  env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "t";
  env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "t@example.com";
  const Child c = Spawn(args, env, dir);
  std::string out;
  const int status = Supervise(c, [&](std::string d) { out += d; }, [] {}, absl::Seconds(1), nullptr);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << absl::StrJoin(args, " ") << ": " << out;
  return std::string(absl::StripAsciiWhitespace(out));
}

TEST(ParseGitSourceTest, SchemesRefsAndCredentials) {
  absl::StatusOr<GitSource> s = ParseGitSource("git+https://bob:hunter2@git.example.com/t/repo.git#dev");
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->url, "https://bob:hunter2@git.example.com/t/repo.git");
  EXPECT_EQ(s->ref, "dev");
  EXPECT_EQ(s->shown, "git+https://git.example.com/t/repo.git#dev");
  s = ParseGitSource("git://127.0.0.1:9418/repo");
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->ref, "HEAD");
  EXPECT_EQ(s->shown, "git://127.0.0.1:9418/repo");
  EXPECT_TRUE(ParseGitSource("git+file:///srv/repo#main").ok());
  absl::Status bad = ParseGitSource("git+ftp://u:secret@h/r").status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), Not(HasSubstr("secret")));
  EXPECT_FALSE(ParseGitSource("git+https://h/r#--upload-pack=x").ok());
  EXPECT_TRUE(IsGitSource("git://h/r"));
  EXPECT_FALSE(IsGitSource("dir:/src"));
}

class GitImporterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(dir_.File("farm.db"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::StatusOr<std::unique_ptr<LocalBlobStore>> b =
        LocalBlobStore::Open({dir_.File("blobs"), dir_.File("farm.db"), int64_t{1} << 30});
    ASSERT_TRUE(b.ok()) << b.status();
    blobs_ = *std::move(b);
    repo_ = dir_.File("repo");
    fs::create_directories(repo_ + "/src");
    Git(repo_, {"init", "--quiet", "-b", "main"});
    std::ofstream(repo_ + "/Dockerfile") << "FROM scratch\n";
    std::ofstream(repo_ + "/src/a.txt") << "one\n";
    Git(repo_, {"add", "-A"});
    Git(repo_, {"commit", "--quiet", "-m", "first"});
  }

  store_testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<LocalBlobStore> blobs_;
  std::string repo_;
};

TEST_F(GitImporterTest, ABranchResolvesToItsCommitAndANewCommitGivesANewTree) {
  GitImporter importer(dir_.File("git"), blobs_.get());
  const std::string source = "git+file://" + repo_ + "#main";
  absl::StatusOr<v1::JobInput> first = importer.Import("src", source);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->commit(), Git(repo_, {"rev-parse", "HEAD"}));
  EXPECT_EQ(first->source(), source);
  EXPECT_EQ(first->files(), 2);
  EXPECT_TRUE(CheckTreeComplete(*blobs_, first->tree(), "input 'src'").ok());

  std::ofstream(repo_ + "/src/a.txt") << "two\n";
  Git(repo_, {"commit", "--quiet", "-am", "second"});
  absl::StatusOr<v1::JobInput> second = importer.Import("src", source);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->commit(), Git(repo_, {"rev-parse", "HEAD"}));
  EXPECT_NE(second->commit(), first->commit());
  EXPECT_NE(second->tree().sha256(), first->tree().sha256());
  // A commit named outright, already in the cache: the same tree as before.
  absl::StatusOr<v1::JobInput> pinned =
      importer.Import("src", "git+file://" + repo_ + "#" + first->commit());
  ASSERT_TRUE(pinned.ok()) << pinned.status();
  EXPECT_EQ(pinned->tree().sha256(), first->tree().sha256());
}

// An annotated tag names a tag object; the job records the commit it tags.
TEST_F(GitImporterTest, AnAnnotatedTagRecordsTheCommitItTags) {
  Git(repo_, {"tag", "-a", "v1", "-m", "v1"});
  ASSERT_NE(Git(repo_, {"rev-parse", "v1"}), Git(repo_, {"rev-parse", "HEAD"}));
  GitImporter importer(dir_.File("git"), blobs_.get());
  absl::StatusOr<v1::JobInput> tagged = importer.Import("src", "git+file://" + repo_ + "#v1");
  ASSERT_TRUE(tagged.ok()) << tagged.status();
  EXPECT_EQ(tagged->commit(), Git(repo_, {"rev-parse", "HEAD"}));
  EXPECT_EQ(tagged->files(), 2);
}

TEST_F(GitImporterTest, MissingRefOrRepositoryIsAClearErrorWithoutCredentials) {
  GitImporter importer(dir_.File("git"), blobs_.get());
  absl::Status s = importer.Import("src", "git+file://" + repo_ + "#nope").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("no ref 'nope'"));
  s = importer.Import("src", "git+https://user:topsecret@127.0.0.1:1/none.git#main").status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("input 'src' (git+https://127.0.0.1:1/none.git#main)"));
  EXPECT_THAT(s.message(), Not(HasSubstr("topsecret")));
}

// Cells of a job that build two refs of one repository (issue 18,
// pipeline/input_uses.h): each use keeps its own name, and one (URL, ref)
// is imported once however many uses name it.
TEST_F(GitImporterTest, EachDistinctRefIsImportedOnceUnderEveryUsesName) {
  Git(repo_, {"tag", "v1"});
  std::ofstream(repo_ + "/src/a.txt") << "two\n";
  Git(repo_, {"commit", "--quiet", "-am", "second"});
  Git(repo_, {"tag", "v2"});
  GitImporter importer(dir_.File("git"), blobs_.get());
  v1::SubmitRequest req;
  for (const auto& [name, ref] : std::vector<std::pair<std::string, std::string>>{
           {"torch_musa", "v1"}, {"torch_musa@recipe=new", "v2"}, {"torch_musa@python=3.9", "v1"}}) {
    v1::JobInput* in = req.add_inputs();
    in->set_name(name);
    in->set_source("git+file://" + repo_ + "#" + ref);
  }
  ASSERT_TRUE(ResolveGitInputs(importer, &req).ok());
  EXPECT_EQ(importer.imports(), 2);
  EXPECT_EQ(req.inputs(0).name(), "torch_musa");
  EXPECT_EQ(req.inputs(1).name(), "torch_musa@recipe=new");
  EXPECT_EQ(req.inputs(2).name(), "torch_musa@python=3.9");
  EXPECT_EQ(req.inputs(0).commit(), Git(repo_, {"rev-parse", "v1"}));
  EXPECT_EQ(req.inputs(1).commit(), Git(repo_, {"rev-parse", "v2"}));
  EXPECT_EQ(req.inputs(2).commit(), req.inputs(0).commit());
  EXPECT_EQ(req.inputs(2).tree().sha256(), req.inputs(0).tree().sha256());
  EXPECT_NE(req.inputs(1).tree().sha256(), req.inputs(0).tree().sha256());
}

}  // namespace
}  // namespace musafarm::coordinator
