// Joined inputs (joined_inputs.h) on a real LocalBlobStore: the joined root
// holds the "." input's entries and each other input as a directory, shares
// their blobs, and is complete in the store; bad joins name the part.
#include "coordinator/joined_inputs.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>

#include "content/packer.h"
#include "content/tree.h"
#include "coordinator/local_blob_store.h"
#include "coordinator/store.h"
#include "coordinator/store_test_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

class JoinedInputsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(dir_.File("farm.db"));
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    absl::StatusOr<std::unique_ptr<LocalBlobStore>> b =
        LocalBlobStore::Open({dir_.File("blobs"), dir_.File("farm.db"), int64_t{1} << 30});
    ASSERT_TRUE(b.ok()) << b.status();
    blobs_ = *std::move(b);
  }

  // Packs `files` (path -> content) as a directory and stores every blob.
  v1::JobInput Input(const std::string& name, const std::map<std::string, std::string>& files) {
    const fs::path root = dir_.File(name);
    for (const auto& [path, text] : files) {
      fs::create_directories((root / path).parent_path());
      std::ofstream(root / path) << text;
    }
    absl::StatusOr<content::PackedTree> tree = content::PackDirectory(root.string());
    EXPECT_TRUE(tree.ok()) << tree.status();
    for (const auto& [sha, blob] : tree->blobs) {
      auto up = blobs_->StartWrite(blob.digest, 0);
      if (up.status().code() == absl::StatusCode::kAlreadyExists) continue;
      EXPECT_TRUE(up.ok()) << up.status();
      std::string bytes = blob.bytes;
      if (!blob.path.empty()) {
        std::ifstream in(blob.path, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
      }
      EXPECT_TRUE((*up)->Append(bytes).ok());
      EXPECT_TRUE((*up)->Finish().ok());
    }
    v1::JobInput in;
    in.set_name(name);
    *in.mutable_tree() = tree->root;
    in.set_files(tree->files);
    in.set_bytes(tree->bytes);
    return in;
  }

  v1::Directory Root(const v1::Digest& d) {
    absl::StatusOr<std::string> blob = blobs_->ReadSmall(d, kMaxDirectoryBlobBytes);
    EXPECT_TRUE(blob.ok()) << blob.status();
    absl::StatusOr<v1::Directory> dir = content::ParseDirectory(*blob, 0, "root");
    EXPECT_TRUE(dir.ok()) << dir.status();
    return *dir;
  }

  store_testing::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<LocalBlobStore> blobs_;
};

TEST_F(JoinedInputsTest, TheJoinHoldsTheTopInputAndTheOthersAsDirectories) {
  v1::SubmitRequest req;
  *req.add_inputs() = Input("dockerfiles", {{"ubuntu/dockerfile.dev", "FROM x\n"},
                                            {"common/install.sh", "echo\n"},
                                            {"torch_musa/VERSION", "placeholder\n"}});
  const v1::JobInput src = Input("torch_musa", {{"VERSION", "v2\n"}, {"setup.py", "x\n"}});
  *req.add_inputs() = src;
  v1::JobInput* join = req.add_inputs();
  join->set_name("context");
  join->set_source("join:.=dockerfiles,torch_musa=torch_musa");
  ASSERT_TRUE(ResolveJoinedInputs(*blobs_, &req).ok());
  ASSERT_EQ(join->tree().sha256().size(), 64u);
  absl::StatusOr<content::TreeStats> stats =
      CheckTreeComplete(*blobs_, join->tree(), "input 'context'");
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->files, 4);  // the placeholder replaced by torch_musa's two files
  const v1::Directory root = Root(join->tree());
  ASSERT_EQ(root.dirs_size(), 3);
  EXPECT_EQ(root.dirs(0).name(), "common");
  EXPECT_EQ(root.dirs(1).name(), "torch_musa");
  EXPECT_EQ(root.dirs(1).digest().sha256(), src.tree().sha256());
  EXPECT_EQ(root.dirs(2).name(), "ubuntu");
  // The same parts again: the same tree.
  v1::SubmitRequest again = req;
  again.mutable_inputs(2)->clear_tree();
  ASSERT_TRUE(ResolveJoinedInputs(*blobs_, &again).ok());
  EXPECT_EQ(again.inputs(2).tree().sha256(), join->tree().sha256());
}

TEST_F(JoinedInputsTest, BadJoinsNameTheInputAndThePart) {
  auto error = [&](const std::string& source) {
    v1::SubmitRequest req;
    *req.add_inputs() = Input("a", {{"f", "1\n"}});
    v1::JobInput* join = req.add_inputs();
    join->set_name("j");
    join->set_source(source);
    return std::string(ResolveJoinedInputs(*blobs_, &req).message());
  };
  EXPECT_EQ(error("join:.=a,x=nope"),
            "input 'j' (join:.=a,x=nope): 'x=nope' names no input given before it with a tree");
  EXPECT_THAT(error("join:../x=a"), HasSubstr("'../x=a' is not .=INPUT or DIR=INPUT"));
  EXPECT_THAT(error("join:x/y=a"), HasSubstr("is not .=INPUT or DIR=INPUT"));
  EXPECT_THAT(error("join:x=a,x=a"), HasSubstr("'x' is given twice"));
  EXPECT_THAT(error("join:.=a,.=a"), HasSubstr("'.' is given twice"));
}

}  // namespace
}  // namespace musafarm::coordinator
