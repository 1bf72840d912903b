// CLI conventions through the real binaries (issue 16, item 4).
#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

// Runs `git -C <source dir> args...`; its exit code, or -1 without git. The
// harness runs argv as is (no PATH search): env finds git.
int Git(const std::vector<std::string>& args, std::string* out) {
  const std::string log = ::testing::TempDir() + "/git.log";
  std::filesystem::remove(log);  // the harness appends
  std::vector<std::string> argv = {"/usr/bin/env", "git", "-C", MF_SOURCE_DIR};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunToExit(argv, log, out);
}

TEST(VersionTest, EveryBinaryPrintsTheVersionWithTheGitRevision) {
  std::string head;
  const bool checkout = Git({"rev-parse", "HEAD"}, &head) == 0;
  for (const char* bin : {MF_COORDINATOR_BIN, MF_AGENT_BIN, MF_CLI_BIN}) {
    SCOPED_TRACE(bin);
    std::string out;
    const std::string log = absl::StrCat(::testing::TempDir(), "/version-",
                                         std::filesystem::path(bin).filename().string(), ".log");
    std::filesystem::remove(log);
    ASSERT_EQ(RunToExit({bin, "--version"}, log, &out), 0) << out;
    static const std::regex kLine(
        "musafarm [0-9]+\\.[0-9]+\\.[0-9]+ \\(git ([0-9a-f]{7,}|unknown)(-dirty)?\\)\n");
    std::smatch m;
    ASSERT_TRUE(std::regex_match(out, m, kLine)) << out;
    const std::string rev = m[1];
    if (!checkout || rev == "unknown") {
      EXPECT_FALSE(checkout) << "a build of a git checkout names its revision";
      continue;
    }
    // The build's commit: HEAD, or one before it when commits were made since
    // the build (the revision is taken at build time; a rebuild takes HEAD's).
    std::string ignored;
    EXPECT_EQ(Git({"merge-base", "--is-ancestor", rev, "HEAD"}, &ignored), 0)
        << rev << " is no commit of this checkout's history (HEAD " << head << ")";
  }
}

class CliFarmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    farm_.StartCoordinator();
    farm_.StartAgent("agent-1", {}, 2);
    ASSERT_TRUE(WaitFor([&] { return farm_.Agents().size() == 1; }))
        << "the agent did not register";
  }
  // The ids `musafarm ARGS... -o json` lists, newest first.
  std::vector<std::string> Listed(std::vector<std::string> args) {
    args.insert(args.end(), {"-o", "json"});
    CliResult r = farm_.Cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> ids;
    const nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.contains("jobs")) {
      ADD_FAILURE() << "not a ListJobsResponse: " << r.out;
      return ids;
    }
    for (const auto& job : j["jobs"]) ids.push_back(job.value("id", ""));
    return ids;
  }
  Farm farm_;
};

TEST_F(CliFarmTest, JobsAreFilteredOnTheCoordinator) {
  const std::string ok = farm_.Submit(farm_.WritePipeline(
      "ok.yaml", "name: nightly-ok\nstages:\n  - name: s\n    exec: [\"true\"]\n"));
  const std::string bad = farm_.Submit(farm_.WritePipeline(
      "bad.yaml", "name: pr-bad\nstages:\n  - name: s\n    exec: [\"false\"]\n"));
  ASSERT_TRUE(farm_.WaitForJobEnd(ok));
  ASSERT_TRUE(farm_.WaitForJobEnd(bad));
  // A job that waits for a label no agent has: running, and held in memory.
  const std::string held = farm_.Submit(farm_.WritePipeline(
      "held.yaml",
      "name: nightly-held\nstages:\n  - name: s\n    labels: [nowhere]\n    exec: [\"true\"]\n"));

  EXPECT_EQ(Listed({"jobs"}), (std::vector<std::string>{held, bad, ok}));
  EXPECT_EQ(Listed({"jobs", "--state", "failed"}), (std::vector<std::string>{bad}));
  EXPECT_EQ(Listed({"jobs", "--state", "succeeded,running"}), (std::vector<std::string>{held, ok}));
  EXPECT_EQ(Listed({"jobs", "--name", "nightly"}), (std::vector<std::string>{held, ok}));
  EXPECT_EQ(Listed({"jobs", "--name", "ightly-o"}), (std::vector<std::string>{ok}));
  EXPECT_EQ(Listed({"jobs", "--since", "1h"}), (std::vector<std::string>{held, bad, ok}));
  EXPECT_EQ(Listed({"jobs", "--older-than", "1h"}), std::vector<std::string>{});
  EXPECT_EQ(Listed({"jobs", "--user", "nobody-here"}), std::vector<std::string>{});
  EXPECT_EQ(Listed({"jobs", "--state", "failed", "-n", "1", "--since", "1d", "--name", "pr"}),
            (std::vector<std::string>{bad}));

  // The held job ends: the state filter follows it.
  ASSERT_EQ(farm_.Cli({"cancel", held}).exit_code, 0);
  ASSERT_TRUE(farm_.WaitForJobEnd(held));
  EXPECT_EQ(Listed({"jobs", "--state", "running"}), std::vector<std::string>{});
  EXPECT_EQ(Listed({"jobs", "--state", "cancelled"}), (std::vector<std::string>{held}));

  CliResult wrong = farm_.Cli({"jobs", "--state", "finished"});
  EXPECT_EQ(wrong.exit_code, 2);
  EXPECT_THAT(wrong.err,
              ::testing::HasSubstr("--state finished: not a job state (running, succeeded, failed, "
                                   "cancelled)"));
}

// Issue 16's acceptance line: `rerun --failed` reruns only the failed chains.
TEST_F(CliFarmTest, RerunFailedRerunsOnlyTheFailedChainsAndRerunAll) {
  // Two cells of build -> test; 3.9's test fails.
  const std::string old = farm_.Submit(farm_.WritePipeline("bt.yaml", kOneFailingCellPipeline));
  ASSERT_TRUE(farm_.WaitForJobEnd(old));
  ASSERT_EQ(farm_.Job(old)->state(), v1::JOB_STATE_FAILED);

  // Still running (a job that waits for a label nobody has) is refused.
  const std::string held = farm_.Submit(farm_.WritePipeline(
      "held.yaml", "name: held\nstages:\n  - name: s\n    labels: [nowhere]\n    exec: [\"true\"]\n"));
  CliResult refused = farm_.Cli({"rerun", held});
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_THAT(refused.err, ::testing::HasSubstr("job " + held + " is still running"));
  CliResult unknown = farm_.Cli({"rerun", "999"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, ::testing::HasSubstr("no job '999'"));

  CliResult failed = farm_.Cli({"rerun", old, "--failed", "-o", "json"});
  ASSERT_EQ(failed.exit_code, 0) << failed.err;
  const nlohmann::json j = nlohmann::json::parse(failed.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << failed.out;
  const std::string n = j.value("id", "");
  ASSERT_FALSE(n.empty()) << failed.out;
  EXPECT_EQ(j.value("rerunOf", ""), old);
  ASSERT_TRUE(farm_.WaitForJobEnd(n));
  absl::StatusOr<v1::Job> rerun = farm_.Job(n);
  ASSERT_TRUE(rerun.ok()) << rerun.status();
  std::vector<std::pair<std::string, v1::TaskState>> tasks;
  for (const v1::Task& t : rerun->tasks()) tasks.emplace_back(t.id(), t.state());
  EXPECT_THAT(tasks, ::testing::ElementsAre(
                         std::make_pair(n + "/3.9/build", v1::TASK_STATE_SUCCEEDED),
                         std::make_pair(n + "/3.9/test", v1::TASK_STATE_FAILED)));
  CliResult status = farm_.Cli({"status", n});
  EXPECT_THAT(status.out, ::testing::HasSubstr("rerun of job " + old));
  EXPECT_THAT(status.out, ::testing::Not(::testing::HasSubstr("3.8")));

  // A plain rerun runs every chain again; jobs shows what each reruns.
  CliResult all = farm_.Cli({"rerun", old});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_THAT(all.out, ::testing::MatchesRegex("submitted job [0-9]+ \\(4 tasks\\), rerun of " +
                                               old + "\n"));
  CliResult jobs = farm_.Cli({"jobs"});
  EXPECT_THAT(jobs.out, ::testing::HasSubstr("RERUN OF"));
}

}  // namespace
}  // namespace musafarm::e2e
