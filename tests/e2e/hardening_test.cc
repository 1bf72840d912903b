// End-to-end tests of issue 12's hardening through the real binaries: params
// that are data in shell scripts, secrets masked in every encoding and kept
// out of files, file modes.
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class HardeningTest : public ::testing::Test {
 protected:
  void StartFarm(const std::vector<std::string>& coordinator_flags = {}) {
    farm_.StartCoordinator(coordinator_flags);
    farm_.StartAgent("agent-1", {"os=linux"}, 2);
    ASSERT_TRUE(WaitFor([&] { return farm_.Agents().size() == 1; })) << "agent did not register";
  }
  // Every path under `root` whose file name is one of `names`.
  static std::vector<std::string> FindNamed(const std::string& root,
                                            const std::vector<std::string>& names) {
    std::vector<std::string> found;
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(root, ec); it != fs::end(it); it.increment(ec)) {
      for (const std::string& n : names) {
        if (it->path().filename() == n) found.push_back(it->path());
      }
    }
    return found;
  }
  Farm farm_;
};

// Issue 12 acceptance: a param with $(...), ';' and backquotes reaches the
// shell as text. The script cds to a directory of the test's choosing first,
// so a relative `touch` would land in a known place; the agent's work dir
// (where tasks start) is searched too.
TEST_F(HardeningTest, ParamWithShellSyntaxIsPrintedNotRun) {
  StartFarm();
  const std::string cwd = farm_.dir() + "/cwd";
  fs::create_directories(cwd);
  const std::string param = "x$(touch F); touch G `touch H`";
  const std::string file = farm_.WritePipeline("p.yaml", absl::StrCat(R"yaml(params: {P: plain}
stages:
  - name: echo
    shell: |
      cd ')yaml", cwd, R"yaml(' && echo ${P}
      echo "in double quotes: ${P}"
      echo 'in single quotes: ${P}'
)yaml"));
  CliResult r = farm_.Cli({"submit", file, "-p", "P=" + param, "--watch"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  CliResult log = farm_.Cli({"logs", "1/echo"});
  ASSERT_EQ(log.exit_code, 0) << log.err;
  EXPECT_EQ(log.out, absl::StrCat(param, "\nin double quotes: ", param,
                                  "\nin single quotes: ", param, "\n"));
  for (const char* name : {"F", "G", "H"}) {
    EXPECT_FALSE(fs::exists(fs::path(cwd) / name)) << cwd << "/" << name;
  }
  EXPECT_THAT(FindNamed(farm_.dir(), {"F", "G", "H"}), ::testing::IsEmpty());
}

}  // namespace
}  // namespace musafarm::e2e
