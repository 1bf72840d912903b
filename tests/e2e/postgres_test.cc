// A coordinator on PostgreSQL (issue 20, first slice) through the real
// binaries: `--store postgresql://...` runs a pipeline, is SIGKILLed and
// restarted on the same database, and finds the job, its tasks and their
// logs' metadata as they were. Nothing of the farm's state is in SQLite.
#include <signal.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"
#include "tests/support/private_postgres.h"

namespace musafarm::e2e {
namespace {

std::string NewDatabase() {
  std::string error;
  test_support::PrivatePostgres* pg = test_support::TestPostgres(&error);
  if (pg == nullptr) {
    ADD_FAILURE() << error;
    return "";
  }
  absl::StatusOr<std::string> url = pg->CreateDatabase();
  if (!url.ok()) ADD_FAILURE() << url.status();
  return url.ok() ? *url : "";
}

TEST(PostgresE2eTest, AJobAndItsLogsSurviveACoordinatorKillOnPostgres) {
  const std::string url = NewDatabase();
  ASSERT_FALSE(url.empty());
  Farm farm;
  farm.StartCoordinator({"--store", url});
  Process* agent = farm.StartAgent("agent-1", {}, 2);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; })) << agent->Output();
  const std::string id = farm.Submit(farm.WritePipeline("pg.yaml", R"(name: on-postgres
stages:
  - name: build
    shell: "echo built-on-postgres; echo second line"
  - name: test
    needs: [build]
    shell: "echo tested-on-postgres"
)"));
  ASSERT_TRUE(farm.WaitForJobEnd(id, absl::Seconds(60))) << farm.coordinator()->Output();
  absl::StatusOr<v1::Job> before = farm.Job(id);
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_EQ(before->state(), v1::JOB_STATE_SUCCEEDED) << before->DebugString();
  ASSERT_EQ(before->tasks_size(), 2);

  farm.StopCoordinator(SIGKILL);
  // The farm's state went to PostgreSQL: no SQLite store in the data dir.
  EXPECT_FALSE(std::filesystem::exists(farm.data_dir() + "/musafarm.db"));
  farm.StartCoordinator({"--store", url});

  absl::StatusOr<v1::Job> after = farm.Job(id);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->state(), v1::JOB_STATE_SUCCEEDED);
  ASSERT_EQ(after->tasks_size(), 2);
  for (int i = 0; i < 2; ++i) {
    const v1::Task& was = before->tasks(i);
    const v1::Task& is = after->tasks(i);
    EXPECT_EQ(is.id(), was.id());
    EXPECT_EQ(is.state(), v1::TASK_STATE_SUCCEEDED) << is.id();
    EXPECT_EQ(is.attempt_id(), was.attempt_id()) << is.id();
    EXPECT_EQ(is.agent(), "agent-1") << is.id();
    EXPECT_GT(is.log_size(), 0u) << is.id();
    EXPECT_EQ(is.log_size(), was.log_size()) << is.id();
    EXPECT_EQ(is.ended_us(), was.ended_us()) << is.id();
  }
  CliResult logs = farm.Cli({"logs", after->tasks(0).id()});
  EXPECT_EQ(logs.exit_code, 0) << logs.err;
  EXPECT_TRUE(absl::StrContains(logs.out, "built-on-postgres\nsecond line")) << logs.out;
  // The restarted coordinator keeps numbering after the stored job.
  const std::string next = farm.Submit(farm.WritePipeline("next.yaml", R"(stages:
  - name: s
    shell: "echo again"
)"));
  EXPECT_GT(std::stoll(next), std::stoll(id));
  ASSERT_TRUE(farm.WaitForJobEnd(next, absl::Seconds(60)));
  agent->Signal(SIGTERM);
  EXPECT_EQ(agent->Wait(absl::Seconds(60)), 0) << agent->Output();
}

TEST(PostgresE2eTest, AStoreThatIsNoPostgresUrlIsRefusedNamingIt) {
  Farm farm;
  auto p = Process::Start({MF_COORDINATOR_BIN, "--insecure", "--listen", "127.0.0.1:0",
                           "--data-dir", farm.data_dir(), "--store", "mysql://db/farm"},
                          farm.dir() + "/bad-store.log");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Wait(absl::Seconds(30)), 2) << (*p)->Output();
  EXPECT_TRUE(absl::StrContains((*p)->Output(), "--store: \"mysql://db/farm\" is not a postgres://"))
      << (*p)->Output();
}

}  // namespace
}  // namespace musafarm::e2e
