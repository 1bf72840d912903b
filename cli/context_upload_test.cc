// A submit's inputs (issue 17, item 1): the pipeline's declared ones, found
// from the pipeline file's directory, and --context, which replaces one of
// them; checked through ContextSources and through the whole command line
// (`submit --dry-run`, which packs but sends nothing).
#include "cli/commands/context_upload.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cli/app.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace musafarm::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

pipeline::InputDecl Declared(const std::string& name, const std::string& path) {
  pipeline::InputDecl in;
  in.name = name;
  in.path = path;
  in.where = absl::StrCat("p.yaml:3:3: inputs.", name);
  return in;
}

// ContextSources for a job whose stages name each declared input (its use in
// every cell is the input itself).
absl::StatusOr<std::vector<ContextSource>> Sources(const std::vector<pipeline::InputDecl>& declared,
                                                  const std::string& dir,
                                                  const std::vector<std::string>& flags) {
  std::vector<pipeline::InputUse> uses;
  for (const pipeline::InputDecl& in : declared) {
    pipeline::InputUse use;
    use.name = in.name;
    use.declared = in.name;
    use.git = in.git;
    use.ref = in.ref;
    use.join = in.join;
    uses.push_back(use);
  }
  return ContextSources(declared, dir, flags, uses);
}

class ContextSourcesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::path(::testing::TempDir()) / absl::StrCat("ctx-", ::getpid());
    fs::remove_all(root_);
    fs::create_directories(root_ / "pipelines");
    fs::create_directories(root_ / "dockerfiles" / "ubuntu");
    fs::create_directories(root_ / "elsewhere");
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path root_;
};

TEST_F(ContextSourcesTest, DeclaredPathsAreFromThePipelinesDirectoryAndAFlagReplacesOne) {
  const std::string dir = (root_ / "pipelines").string();
  auto sources = Sources({Declared("dockerfiles", "../dockerfiles"), Declared("src", ".")},
                                dir, {"src=/work/torch_musa"});
  ASSERT_TRUE(sources.ok()) << sources.status();
  ASSERT_EQ(sources->size(), 2u);
  EXPECT_EQ((*sources)[0].name, "dockerfiles");
  EXPECT_EQ((*sources)[0].source, (root_ / "dockerfiles").string());
  EXPECT_EQ((*sources)[0].ignore_file, ".dockerignore");
  EXPECT_EQ((*sources)[0].origin, "p.yaml:3:3: inputs.dockerfiles");
  EXPECT_EQ((*sources)[1].name, "src");
  EXPECT_EQ((*sources)[1].source, "/work/torch_musa");
  EXPECT_EQ((*sources)[1].origin, "--context src");
  // A git URL replaces a directory as well.
  sources = Sources({Declared("src", ".")}, dir, {"src=git://127.0.0.1:1/t.git#v1"});
  ASSERT_TRUE(sources.ok()) << sources.status();
  EXPECT_EQ((*sources)[0].source, "git://127.0.0.1:1/t.git#v1");
}

TEST_F(ContextSourcesTest, WithoutDeclaredInputsEveryFlagIsAnInput) {
  auto sources = Sources({}, "", {"a=x", "b=y"});
  ASSERT_TRUE(sources.ok()) << sources.status();
  ASSERT_EQ(sources->size(), 2u);
  EXPECT_EQ((*sources)[1].name, "b");
  EXPECT_EQ((*sources)[1].source, "y");
}

TEST_F(ContextSourcesTest, ErrorsNameTheFileOrTheFlag) {
  const std::string dir = (root_ / "pipelines").string();
  auto missing = Sources({Declared("src", "../torch_musa")}, dir, {});
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(std::string(missing.status().message()),
              HasSubstr("p.yaml:3:3: inputs.src: path '../torch_musa' is " +
                        (root_ / "torch_musa").string() +
                        " (from the pipeline file's directory), which is not a directory here; "
                        "give --context src=DIR"));
  pipeline::InputDecl ignore = Declared("src", ".");
  ignore.ignore = "docker/.dockerignore";
  ignore.ignore_given = true;
  auto no_ignore = Sources({ignore}, dir, {});
  ASSERT_FALSE(no_ignore.ok());
  EXPECT_THAT(std::string(no_ignore.status().message()),
              HasSubstr("p.yaml:3:3: inputs.src: ignore file 'docker/.dockerignore' is not in"));
  auto undeclared = Sources({Declared("src", ".")}, dir, {"srd=."});
  ASSERT_FALSE(undeclared.ok());
  EXPECT_EQ(undeclared.status().message(),
            "--context srd: the pipeline declares no input 'srd' (inputs are: src)");
  auto twice = Sources({}, dir, {"a=x", "a=y"});
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.status().message(), "--context a: given twice");
}

// The whole command line, from another working directory than the file's:
// `--context` before the file (it takes a value), and the declared input
// packed with its ignore file.
TEST_F(ContextSourcesTest, DryRunPacksTheDeclaredInputFromTheFilesDirectory) {
  std::ofstream(root_ / "dockerfiles" / "ubuntu" / "dockerfile.dev") << "FROM scratch\n";
  std::ofstream(root_ / "dockerfiles" / "notes.txt") << "left out\n";
  std::ofstream(root_ / "dockerfiles" / "ignore") << "notes.txt\n";
  std::ofstream(root_ / "elsewhere" / "a.txt") << "a\n";
  const std::string file = (root_ / "pipelines" / "p.yaml").string();
  std::ofstream(file) << R"(name: p
inputs:
  dockerfiles: {path: ../dockerfiles, ignore: ignore}
  src: {path: .}
stages:
  - name: image
    docker_build:
      context: input:dockerfiles
      dockerfile: ubuntu/dockerfile.dev
      tags: [x:1]
)";
  auto run = [&](std::vector<const char*> args, std::string* out, std::string* err) {
    args.insert(args.begin(), {"musafarm", "--insecure", "--coordinator", "127.0.0.1:1"});
    std::ostringstream o, e;
    CommandEnv env;
    env.out = &o;
    env.err = &e;
    env.tz = absl::UTCTimeZone();
    const int code = RunCli(static_cast<int>(args.size()), args.data(), env);
    *out = o.str();
    *err = e.str();
    return code;
  };
  const std::string other = (root_ / "elsewhere").string();
  std::string out, err;
  ASSERT_EQ(run({"submit", "--dry-run", "--context", ("src=" + other).c_str(), file.c_str()}, &out,
                &err),
            0)
      << err;
  const nlohmann::json inputs = nlohmann::json::parse(out)["request"]["inputs"];
  ASSERT_EQ(inputs.size(), 2u) << out;
  EXPECT_EQ(inputs[0]["name"], "dockerfiles");
  EXPECT_EQ(inputs[0]["source"], "dir:" + (root_ / "dockerfiles").string());
  EXPECT_EQ(inputs[0]["files"], "2");  // ubuntu/dockerfile.dev and ignore, not notes.txt
  EXPECT_EQ(inputs[1]["name"], "src");
  EXPECT_EQ(inputs[1]["source"], "dir:" + other);
  // An undeclared name is refused before anything is packed.
  EXPECT_EQ(run({"submit", "--dry-run", "--context", "dockerfile=.", file.c_str()}, &out, &err), 2);
  EXPECT_THAT(err, HasSubstr("--context dockerfile: the pipeline declares no input 'dockerfile' "
                             "(inputs are: dockerfiles, src)"));
}

}  // namespace
}  // namespace musafarm::cli
