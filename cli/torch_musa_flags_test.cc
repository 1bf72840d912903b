// The command lines torch_musa's docker scripts and README pass to build.sh and
// build_base.sh (README.md of the dev1.5.1 era, build_all.sh, build_dev.sh,
// build_release.sh), restated in our own words as test data, each run through
// `musafarm submit --dry-run` against pipelines/torch_musa.yaml: the whole
// command line as the CLI parses it, nothing sent. Each row says what the
// flags must become: params, matrix axes and secrets (values masked).
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "content/packer.h"
#include "absl/time/time.h"
#include "cli/app.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace musafarm::cli {
namespace {

using ::testing::HasSubstr;

const std::string kPipeline = std::string(MF_SOURCE_DIR) + "/pipelines/torch_musa.yaml";

struct DryRun {
  int exit_code = -1;
  nlohmann::json doc;
  std::string out, err;
};

DryRun Submit(const std::vector<std::string>& flags) {
  std::vector<const char*> argv = {"musafarm", "--insecure", "--coordinator",
                                   "127.0.0.1:1",  // never dialled: --dry-run
                                   "submit",   "--dry-run",  kPipeline.c_str()};
  for (const std::string& f : flags) argv.push_back(f.c_str());
  std::ostringstream out, err;
  CommandEnv env;
  env.out = &out;
  env.err = &err;
  env.tz = absl::UTCTimeZone();
  DryRun r;
  r.exit_code = RunCli(static_cast<int>(argv.size()), argv.data(), env);
  r.out = out.str();
  r.err = err.str();
  if (r.exit_code == 0) r.doc = nlohmann::json::parse(r.out);
  return r;
}

struct Row {
  const char* what;                 // whose command line, in our words
  std::vector<std::string> flags;   // as that script passes them
  std::map<std::string, std::string> params;
  std::map<std::string, std::vector<std::string>> axes;
  std::vector<std::string> secrets;  // names; every value prints as ***
  std::string job_name;
  int tasks;  // what the job expands to
};

constexpr char kUrl[] = "https://dl.example/musa/pkg.tar.gz?token=t0ps3cret";
constexpr char kWheel[] = "https://dl.example/whl/torch-2.0.0-cp38-cp38-linux_x86_64.whl";
constexpr char kBase39[] = "harbor.example/mt-ai/musa-pytorch-dev-py39:base-pytorch2.0.0";

std::vector<Row> Rows() {
  return {
      {"the README's base image for Python 3.10 (build_base.sh)",
       {"-n", "pytorch2.0.0_py310", "-s", "ubuntu:20.04", "-v", "3.10"},
       {{"name", "pytorch2.0.0_py310"}, {"sys", "ubuntu:20.04"}},
       {{"python", {"3.10"}}},
       {},
       "pytorch2.0.0_py310",
       5},  // base, dev, test-dev, release, test-release
      {"the README's dev image on a harbor base, -f from the checkout's root",
       {"-n", "torch_musa_dev", "-b", kBase39, "-f", "docker/ubuntu/dockerfile.dev", "-m", kUrl,
        "--mudnn_url", kUrl, "--mccl_url", kUrl, "--torch_musa_tag", "dev1.5.1"},
       {{"name", "torch_musa_dev"},
        {"base_img", kBase39},
        {"dev_dockerfile", "ubuntu/dockerfile.dev"},
        {"torch_musa_tag", "dev1.5.1"}},
       {{"variant", {"dev"}}},
       {"MCCL_URL", "MUDNN_URL", "MUSA_TOOLKITS_URL"},
       "torch_musa_dev",
       6},  // dev and test-dev for three Pythons (no base: -b)
      {"the README's release image, -f from docker/, --release spelled out",
       {"-n", "torch_musa_docker", "-b", "ubuntu:20.04", "-f", "./ubuntu/dockerfile.release", "-v",
        "3.8", "-m", kUrl, "--mudnn_url", kUrl, "--mccl_url", kUrl, "--torch_whl_url", kWheel,
        "--torch_musa_whl_url", kWheel, "--release"},
       {{"name", "torch_musa_docker"},
        {"base_img", "ubuntu:20.04"},
        {"release_dockerfile", "ubuntu/dockerfile.release"}},
       {{"variant", {"release"}}, {"python", {"3.8"}}},
       {"MCCL_URL", "MUDNN_URL", "MUSA_TOOLKITS_URL", "TORCH_MUSA_WHL_URL", "TORCH_WHL_URL"},
       "torch_musa_docker",
       2},
      {"build_all.sh's dev loop for Python 3.9, with --no_prepare",
       {"-n", "harbor.example/mt-ai/musa-pytorch-dev-py39", "-b", kBase39, "-f",
        "./ubuntu/dockerfile.dev", "-t", "dev1.5.1-qy1", "-m", kUrl, "--mudnn_url", kUrl,
        "--mccl_url", kUrl, "--no_prepare"},
       {{"name", "harbor.example/mt-ai/musa-pytorch-dev-py39"},
        {"base_img", kBase39},
        {"dev_dockerfile", "ubuntu/dockerfile.dev"},
        {"tag", "dev1.5.1-qy1"},
        {"no_prepare", "true"}},
       {{"variant", {"dev"}}},
       {"MCCL_URL", "MUDNN_URL", "MUSA_TOOLKITS_URL"},
       "harbor.example/mt-ai/musa-pytorch-dev-py39",
       6},
      {"build_all.sh's release loop for Python 3.10",
       {"-n", "harbor.example/mt-ai/musa-pytorch-release-py310", "-b", "ubuntu:20.04", "-f",
        "./ubuntu/dockerfile.release", "-v", "3.10", "-m", kUrl, "-t", "dev1.5.1-qy1",
        "--mudnn_url", kUrl, "--mccl_url", kUrl, "--torch_whl_url", kWheel,
        "--torch_musa_whl_url", kWheel, "--release"},
       {{"name", "harbor.example/mt-ai/musa-pytorch-release-py310"},
        {"base_img", "ubuntu:20.04"},
        {"release_dockerfile", "ubuntu/dockerfile.release"},
        {"tag", "dev1.5.1-qy1"}},
       {{"variant", {"release"}}, {"python", {"3.10"}}},
       {"MCCL_URL", "MUDNN_URL", "MUSA_TOOLKITS_URL", "TORCH_MUSA_WHL_URL", "TORCH_WHL_URL"},
       "harbor.example/mt-ai/musa-pytorch-release-py310",
       2},
      {"build_dev.sh: Python 3.10, a torch_musa tag, --no_prepare",
       {"-n", "harbor.example/mt-ai/musa-pytorch-dev-py310", "-b",
        "harbor.example/mt-ai/musa-pytorch-base-py310:rc4.0.0-v2.0.0", "-f",
        "./ubuntu/dockerfile.dev", "-v", "3.10", "-t", "rc4.0.0-v2.0.0-qy2", "-m", kUrl,
        "--mudnn_url", kUrl, "--mccl_url", kUrl, "--torch_musa_tag", "v2.0.0", "--no_prepare"},
       {{"name", "harbor.example/mt-ai/musa-pytorch-dev-py310"},
        {"base_img", "harbor.example/mt-ai/musa-pytorch-base-py310:rc4.0.0-v2.0.0"},
        {"dev_dockerfile", "ubuntu/dockerfile.dev"},
        {"tag", "rc4.0.0-v2.0.0-qy2"},
        {"torch_musa_tag", "v2.0.0"},
        {"no_prepare", "true"}},
       {{"variant", {"dev"}}, {"python", {"3.10"}}},
       {"MCCL_URL", "MUDNN_URL", "MUSA_TOOLKITS_URL"},
       "harbor.example/mt-ai/musa-pytorch-dev-py310",
       2},
      {"build_release.sh: torchaudio and torchvision wheels too",
       {"-n", "harbor.example/mt-ai/musa-pytorch-release-py38", "-b", "ubuntu:20.04", "-f",
        "./ubuntu/dockerfile.release", "-v", "3.8", "-m", kUrl, "-t", "dev3.0.0-v1.2.0-qy2",
        "--mudnn_url", kUrl, "--mccl_url", kUrl, "--torch_whl_url", kWheel,
        "--torch_musa_whl_url", kWheel, "--torchaudio_whl_url", kWheel, "--torchvision_whl_url",
        kWheel, "--release"},
       {{"name", "harbor.example/mt-ai/musa-pytorch-release-py38"},
        {"base_img", "ubuntu:20.04"},
        {"release_dockerfile", "ubuntu/dockerfile.release"},
        {"tag", "dev3.0.0-v1.2.0-qy2"}},
       {{"variant", {"release"}}, {"python", {"3.8"}}},
       {"MCCL_URL", "MUDNN_URL", "MUSA_TOOLKITS_URL", "TORCHAUDIO_WHL_URL", "TORCHVISION_WHL_URL",
        "TORCH_MUSA_WHL_URL", "TORCH_WHL_URL"},
       "harbor.example/mt-ai/musa-pytorch-release-py38",
       2},
      {"the long form as torch_musa's getopt spells it (--python_verison)",
       {"--python_verison", "3.9", "-r"},
       {},
       {{"variant", {"release"}}, {"python", {"3.9"}}},
       {},
       "",
       2},
  };
}

TEST(TorchMusaFlagsTest, ScriptCommandLinesBecomeTheseParamsAxesAndSecrets) {
  for (const Row& row : Rows()) {
    SCOPED_TRACE(row.what);
    const DryRun r = Submit(row.flags);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    const nlohmann::json& req = r.doc.at("request");
    // The params the flags set (the file's defaults are not in the request).
    std::map<std::string, std::string> params;
    if (req.contains("params")) params = req.at("params").get<decltype(params)>();
    EXPECT_EQ(params, row.params);
    std::map<std::string, std::vector<std::string>> axes;
    if (req.contains("axes")) {
      for (const auto& a : req.at("axes")) {
        axes[a.at("axis")] = a.at("values").get<std::vector<std::string>>();
      }
    }
    EXPECT_EQ(axes, row.axes);
    std::vector<std::string> secrets;
    if (req.contains("secrets")) {
      for (const auto& [name, value] : req.at("secrets").items()) {
        secrets.push_back(name);
        EXPECT_EQ(value, "***") << name;
      }
    }
    EXPECT_EQ(secrets, row.secrets);
    EXPECT_EQ(req.value("name", ""), row.job_name);
    EXPECT_EQ(static_cast<int>(r.doc.at("job").at("tasks").size()), row.tasks);
    // No secret value anywhere in what was printed.
    EXPECT_THAT(r.out, ::testing::Not(HasSubstr("t0ps3cret")));
    EXPECT_THAT(r.out, ::testing::Not(HasSubstr("dl.example")));
  }
}

TEST(TorchMusaFlagsTest, NoPrepareIsAcceptedWithANote) {
  const DryRun r = Submit({"-f", "docker/ubuntu/dockerfile.dev", "--no_prepare"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("musafarm: note: --no_prepare: accepted and ignored: the build "
                               "context is the pipeline's inputs"));
}

TEST(TorchMusaFlagsTest, TheDockerfilePathsOfTheScriptsResolveUnderDockerfiles) {
  for (const char* path : {"docker/ubuntu/dockerfile.dev", "./ubuntu/dockerfile.dev",
                           "ubuntu/dockerfile.dev", "./docker/ubuntu/dockerfile.dev"}) {
    SCOPED_TRACE(path);
    const DryRun r = Submit({"-f", path});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    for (const auto& task : r.doc.at("job").at("tasks")) {
      if (task.at("spec").at("stage") != "dev") continue;
      // A path in the build context, input `context`: the Dockerfiles travel
      // with the job (no agent needs a copy).
      EXPECT_EQ(task.at("spec").at("run").at("dockerBuild").at("dockerfile"),
                "ubuntu/dockerfile.dev");
      EXPECT_EQ(task.at("spec").at("run").at("dockerBuild").at("contextInput"), "context");
    }
  }
}

// build_dev.sh picks its toolkit, muDNN and MCCL per GPU architecture; here a
// package set file per architecture, and build_all.sh's per-Python wheels, in
// one command each. Per-cell values reach the request as NAME@AXIS=VALUE.
TEST(TorchMusaFlagsTest, PerArchitecturePackageSetsAndPerPythonWheels) {
  auto write = [](const std::string& arch) {
    const std::string path = ::testing::TempDir() + "/set-" + arch + ".yaml";
    std::ofstream(path) << "name: rc3.1.0-" << arch << "\npackages:\n"
                        << "  - {name: musa_toolkits, version: rc3.1.0, secret: MUSA_TOOLKITS_URL, "
                           "url: 'https://dl.example/"
                        << arch << "/musa.tgz?t=t0ps3cret', sha256: " << std::string(64, 'a')
                        << "}\n";
    return path;
  };
  const DryRun r = Submit({"-f", "docker/ubuntu/dockerfile.dev", "--arch", "qy2,ph1",
                           "--package-set", "qy2=" + write("qy2") + ",ph1=" + write("ph1")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json& req = r.doc.at("request");
  EXPECT_EQ(req.at("params").at("package_set@arch=qy2"), "rc3.1.0-qy2");
  EXPECT_EQ(req.at("params").at("package_set@arch=ph1"), "rc3.1.0-ph1");
  EXPECT_EQ(req.at("params").at("package_sha256s@arch=ph1"),
            "MUSA_TOOLKITS_URL=" + std::string(64, 'a'));
  EXPECT_THAT(std::string(req.at("params").at("download_cache_key@arch=qy2")),
              ::testing::StartsWith("sha256:"));
  EXPECT_EQ(req.at("secrets").at("MUSA_TOOLKITS_URL@arch=qy2"), "***");
  EXPECT_EQ(req.at("secrets").at("MUSA_TOOLKITS_URL@arch=ph1"), "***");
  EXPECT_THAT(r.out, ::testing::Not(HasSubstr("t0ps3cret")));
  // The qy2 cell's dev build takes the qy2 set's toolkit; its tests run on qy2.
  for (const auto& task : r.doc.at("job").at("tasks")) {
    const std::string id = task.at("id");
    if (id == "local/dev-3.8-qy2-dev1.5.1/dev") {
      EXPECT_EQ(task.at("spec").at("run").at("secretSources").at("MUSA_TOOLKITS_URL"),
                "MUSA_TOOLKITS_URL@arch=qy2");
      // download.sh checks the toolkit against the set's sha256.
      EXPECT_EQ(task.at("spec").at("run").at("dockerBuild").at("buildArgs").at("PACKAGE_SHA256S"),
                "MUSA_TOOLKITS_URL=" + std::string(64, 'a'));
    }
    if (id == "local/dev-3.8-ph1-dev1.5.1/test-dev") {
      EXPECT_THAT(task.at("spec").at("run").at("labels"), ::testing::Contains("musa_arch=ph1"));
    }
  }

  const DryRun wheels =
      Submit({"-r", "-v", "3.8,3.9,3.10", "--torch_whl_url",
              "3.8=https://w/torch-cp38.whl,3.9=https://w/torch-cp39.whl",
              "--torch_whl_url", "3.10=https://w/torch-cp310.whl"});
  ASSERT_EQ(wheels.exit_code, 0) << wheels.err;
  std::vector<std::string> names;
  for (const auto& [name, value] : wheels.doc.at("request").at("secrets").items()) {
    names.push_back(name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"TORCH_WHL_URL@python=3.10",
                                             "TORCH_WHL_URL@python=3.8",
                                             "TORCH_WHL_URL@python=3.9"}));
  // A Python that is not on the axis, and a mix of forms, are refused.
  EXPECT_EQ(Submit({"-r", "--torch_whl_url", "3.8=https://w/a.whl,https://w/b.whl"}).exit_code, 2);
  const DryRun bad = Submit({"-r", "-v", "3.8", "--torch_whl_url", "3.11=https://w/a.whl"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_THAT(bad.err, HasSubstr("--torch_whl_url: '3.11' is not a value of any axis (variant: "
                                 "dev, release; python: 3.8, 3.9, 3.10;"));
}

// The pipeline's declared inputs (issues 17 and 18): the Dockerfiles and
// common/ scripts travel as input `dockerfiles` (their tree digest, packed
// from the repository's dockerfiles/), torch_musa as a git input at
// --torch_musa_tag, and the dev images' context joins them. A cell whose
// recipe pins another tag builds its own (torch_musa@recipe=v2.0.1); a job
// of release images alone resolves no torch_musa.
TEST(TorchMusaFlagsTest, TheTagSelectsTheGitInputPerRecipeAndTheDockerfilesTravel) {
  absl::StatusOr<content::PackedTree> dockerfiles =
      content::PackDirectory(std::string(MF_SOURCE_DIR) + "/dockerfiles");
  ASSERT_TRUE(dockerfiles.ok()) << dockerfiles.status();
  const std::string repo = "git+https://github.com/MooreThreads/torch_musa.git";
  // name -> source, and the dockerfiles tree.
  auto inputs = [&](const DryRun& r) {
    std::map<std::string, std::string> out;
    for (const auto& in : r.doc.at("request").at("inputs")) {
      out[in.at("name")] = in.at("source");
      if (in.at("name") == "dockerfiles") {
        EXPECT_EQ(in.at("tree").at("sha256"), dockerfiles->root.sha256());
      }
    }
    return out;
  };
  auto contexts = [](const DryRun& r) {  // task id -> context input
    std::map<std::string, std::string> out;
    for (const auto& task : r.doc.at("job").at("tasks")) {
      const auto& run = task.at("spec").at("run");
      if (run.contains("dockerBuild")) out[task.at("id")] = run.at("dockerBuild").at("contextInput");
    }
    return out;
  };
  const std::string dir = "dir:" + std::string(MF_SOURCE_DIR) + "/dockerfiles";

  DryRun r = Submit({"--torch_musa_tag", "v1.3.0", "-v", "3.9"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(inputs(r), (std::map<std::string, std::string>{
                           {"dockerfiles", dir},
                           {"torch_musa", repo + "#v1.3.0"},
                           {"context", "join:.=dockerfiles,torch_musa=torch_musa"}}));
  EXPECT_EQ(contexts(r), (std::map<std::string, std::string>{
                             {"local/dev-3.9-any-dev1.5.1/base", "context"},
                             {"local/dev-3.9-any-dev1.5.1/dev", "context"},
                             {"local/release-3.9-any-dev1.5.1/release", "dockerfiles"}}));

  // Two recipes: each builds its own tag.
  r = Submit({"-v", "3.10", "--axis", "recipe=dev1.5.1,v2.0.1", "--variant", "dev"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(inputs(r),
            (std::map<std::string, std::string>{
                {"dockerfiles", dir},
                {"torch_musa", repo + "#v1.1.0"},
                {"context", "join:.=dockerfiles,torch_musa=torch_musa"},
                {"torch_musa@recipe=v2.0.1", repo + "#v2.0.1"},
                {"context@recipe=v2.0.1", "join:.=dockerfiles,torch_musa=torch_musa@recipe=v2.0.1"}}));
  EXPECT_EQ(contexts(r).at("local/dev-3.10-any-dev1.5.1/dev"), "context");
  EXPECT_EQ(contexts(r).at("local/dev-3.10-any-v2.0.1/dev"), "context@recipe=v2.0.1");
  EXPECT_EQ(contexts(r).at("local/dev-3.10-any-v2.0.1/base"), "context@recipe=v2.0.1");

  // Another repository (a mirror), by param.
  r = Submit({"--recipe", "v2.0.1", "-v", "3.10", "--variant", "dev", "--param",
              "torch_musa_repo=git://mirror.example/torch_musa.git"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(inputs(r).at("torch_musa@recipe=v2.0.1"), "git://mirror.example/torch_musa.git#v2.0.1");
  EXPECT_EQ(inputs(r).count("torch_musa"), 0u);  // no cell builds the default tag

  // Release images only: no torch_musa source is resolved.
  r = Submit({"-r", "-v", "3.9"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(inputs(r), (std::map<std::string, std::string>{{"dockerfiles", dir}}));
}

}  // namespace
}  // namespace musafarm::cli
