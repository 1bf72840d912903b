// End-to-end tests of issue 14's schedules with the real coordinator, agent
// and CLI on loopback, under the real clock.
#include <string>

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

}  // namespace
}  // namespace musafarm::e2e
