// End-to-end tests of issue 14's schedules with the real coordinator, agent
// and CLI on loopback, under the real clock.
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPipeline[] = R"yaml(name: nightly
secrets: [NIGHTLY_TOKEN]
stages:
  - name: build
    exec: ["sh", "-c", "echo built"]
)yaml";

TEST(ScheduleE2eTest, AScheduleFiresAtTheNextMinuteThroughTheRealBinaries) {
  Farm farm;
  farm.StartCoordinator();
  farm.StartAgent("agent-1", {}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; }));
  const std::string pipeline = farm.WritePipeline("nightly.yaml", kPipeline);

  // Bad input is refused naming what is wrong; nothing is added.
  CliResult bad = farm.Cli({"schedule", "add", "nightly", "--cron", "0 25 * * *", pipeline});
  EXPECT_EQ(bad.exit_code, 2) << bad.out << bad.err;
  EXPECT_THAT(bad.err, HasSubstr("hour"));

  // Every minute: the first run is at the next minute boundary.
  ::setenv("NIGHTLY_TOKEN", "tok-e2e-value", 1);
  CliResult add = farm.Cli({"schedule", "add", "nightly", "--cron", "* * * * *", "--timezone",
                            "Asia/Shanghai", pipeline, "--secret", "NIGHTLY_TOKEN"});
  ASSERT_EQ(add.exit_code, 0) << add.out << add.err;
  EXPECT_THAT(add.out, HasSubstr("schedule nightly added"));

  std::string job_id;
  ASSERT_TRUE(WaitFor(
      [&] {
        CliResult show = farm.Cli({"schedule", "show", "nightly", "-o", "json"});
        if (show.exit_code != 0) return false;
        nlohmann::json s = nlohmann::json::parse(show.out, nullptr, false);
        if (s.is_discarded() || s["runs"].empty()) return false;
        job_id = s["runs"][0]["jobId"].get<std::string>();
        return !job_id.empty();
      },
      absl::Seconds(90)));
  ASSERT_TRUE(farm.WaitForJobEnd(job_id));
  absl::StatusOr<v1::Job> job = farm.Job(job_id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
  EXPECT_EQ(job->schedule(), "nightly");
  EXPECT_TRUE(job->batch());
  EXPECT_EQ(job->scheduled_time().seconds() % 60, 0);  // a minute's slot
  ASSERT_EQ(job->secrets_size(), 1);  // the stored secret reached the run

  // The schedule shows its run and its result; its secret is never shown.
  CliResult list = farm.Cli({"schedule", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_THAT(list.out, HasSubstr("nightly"));
  CliResult show = farm.Cli({"schedule", "show", "nightly"});
  EXPECT_THAT(show.out, HasSubstr(absl::StrCat("job ", job_id)));
  EXPECT_THAT(show.out, HasSubstr("NIGHTLY_TOKEN (stored encrypted, never shown)"));
  EXPECT_THAT(show.out + list.out, Not(HasSubstr("tok-e2e-value")));
  CliResult json = farm.Cli({"schedule", "show", "nightly", "-o", "json"});
  EXPECT_THAT(json.out, Not(HasSubstr("tok-e2e-value")));

  // Pause, run now, remove; every change is audited.
  EXPECT_EQ(farm.Cli({"schedule", "pause", "nightly"}).exit_code, 0);
  CliResult run = farm.Cli({"schedule", "run", "nightly"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.out, HasSubstr("submitted job"));
  EXPECT_EQ(farm.Cli({"schedule", "remove", "nightly"}).exit_code, 0);
  CliResult gone = farm.Cli({"schedule", "show", "nightly"});
  EXPECT_EQ(gone.exit_code, 2) << gone.out << gone.err;
  CliResult audit = farm.Cli({"audit"});
  for (const char* action : {"schedule.add", "schedule.pause", "schedule.run", "schedule.remove"}) {
    EXPECT_THAT(audit.out, HasSubstr(action));
  }
}

// Issue 17 for schedules: `schedule add --context NAME=DIR` uploads the
// directory once and every run records that tree (the schedule pins it), even
// after the directory changed; a git context is resolved again at each run,
// so a new commit on the branch gives the next run a new commit and tree.
TEST(ScheduleE2eTest, RunsBuildThePinnedUploadAndFollowAGitBranch) {
  Farm farm;
  farm.StartCoordinator();
  farm.StartAgent("agent-1", {}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; }));
  const std::string pipeline = farm.WritePipeline(
      "inputs.yaml", "name: inputs\nstages:\n  - name: build\n    exec: [\"true\"]\n");
  auto run = [&](const std::string& schedule) -> v1::Job {
    CliResult r = farm.Cli({"schedule", "run", schedule, "-o", "json"}, absl::Seconds(60));
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    nlohmann::json j = nlohmann::json::parse(r.out, nullptr, false);
    const std::string id = j.is_discarded() ? "" : j.value("jobId", "");
    EXPECT_FALSE(id.empty()) << r.out;
    EXPECT_TRUE(farm.WaitForJobEnd(id));
    absl::StatusOr<v1::Job> job = farm.Job(id);
    EXPECT_TRUE(job.ok()) << job.status();
    EXPECT_EQ(job.ok() ? job->inputs_size() : 0, 1);
    return job.ok() ? *job : v1::Job();
  };

  const std::string dir = farm.dir() + "/src";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/msg.txt") << "first\n";
  CliResult add = farm.Cli({"schedule", "add", "from-dir", "--cron", "0 2 * * *", pipeline,
                            "--context", "src=" + dir});
  ASSERT_EQ(add.exit_code, 0) << add.out << add.err;
  const v1::Job dir1 = run("from-dir");
  std::ofstream(dir + "/msg.txt") << "changed after the schedule was added\n";
  const v1::Job dir2 = run("from-dir");
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(dir1.inputs(0).source(), "dir:" + dir);
  EXPECT_EQ(dir2.inputs(0).tree().sha256(), dir1.inputs(0).tree().sha256());
  CliResult show = farm.Cli({"schedule", "show", "from-dir"});
  EXPECT_THAT(show.out, HasSubstr(absl::StrCat("input:    src: dir:", dir, ", tree ",
                                               dir1.inputs(0).tree().sha256().substr(0, 12),
                                               " (pinned)")));

  const std::string repo = farm.dir() + "/repo";
  std::filesystem::create_directories(repo);
  int step = 0;
  auto git = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"/usr/bin/git", "-C", repo, "-c", "user.name=t", "-c",
                               "user.email=t@example.com"});
    auto p = Process::Start(args, absl::StrCat(farm.dir(), "/git-", step++, ".log"));
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return std::string();
    EXPECT_EQ((*p)->Wait(absl::Seconds(30)), 0) << (*p)->Output();
    return std::string(absl::StripAsciiWhitespace((*p)->Output()));
  };
  git({"init", "--quiet", "-b", "main"});
  std::ofstream(repo + "/msg.txt") << "first\n";
  git({"add", "-A"});
  git({"commit", "--quiet", "-m", "first"});
  const std::string first = git({"rev-parse", "HEAD"});
  const std::string url = "git+file://" + repo + "#main";
  add = farm.Cli({"schedule", "add", "from-git", "--cron", "0 2 * * *", pipeline, "--context",
                  "src=" + url});
  ASSERT_EQ(add.exit_code, 0) << add.out << add.err;
  const v1::Job git1 = run("from-git");
  std::ofstream(repo + "/msg.txt") << "second\n";
  git({"commit", "--quiet", "-am", "second"});
  const std::string second = git({"rev-parse", "HEAD"});
  const v1::Job git2 = run("from-git");
  ASSERT_FALSE(HasFailure());
  EXPECT_EQ(git1.inputs(0).commit(), first);
  EXPECT_EQ(git2.inputs(0).commit(), second);
  EXPECT_NE(git2.inputs(0).tree().sha256(), git1.inputs(0).tree().sha256());
  EXPECT_EQ(git2.inputs(0).source(), url);
  show = farm.Cli({"schedule", "show", "from-git"});
  EXPECT_THAT(show.out, HasSubstr("input:    src: " + url + " (resolved at each run)"));

  // A branch that does not exist: the run is recorded with git's reason.
  add = farm.Cli({"schedule", "add", "no-branch", "--cron", "0 2 * * *", pipeline, "--context",
                  "src=git+file://" + repo + "#nope"});
  ASSERT_EQ(add.exit_code, 0) << add.out << add.err;
  CliResult refused = farm.Cli({"schedule", "run", "no-branch"});
  EXPECT_EQ(refused.exit_code, 0) << refused.err;
  EXPECT_THAT(refused.out, HasSubstr("no ref 'nope'"));
}

}  // namespace
}  // namespace musafarm::e2e
