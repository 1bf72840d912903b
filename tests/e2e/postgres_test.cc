// A coordinator on PostgreSQL (issue 20, first slice) through the real
// binaries: `--store postgresql://...` runs a pipeline, is SIGKILLed and
// restarted on the same database, and finds the job, its tasks and their
// logs' metadata as they were. Nothing of the farm's state is in SQLite.
#include <signal.h>

#include <filesystem>
#include <map>
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
  // The farm's state, logs and content store went to PostgreSQL: nothing of
  // them in the data dir.
  EXPECT_FALSE(std::filesystem::exists(farm.data_dir() + "/musafarm.db"));
  EXPECT_FALSE(std::filesystem::exists(farm.data_dir() + "/logs"));
  EXPECT_FALSE(std::filesystem::exists(farm.data_dir() + "/blobs"));
  EXPECT_FALSE(std::filesystem::exists(farm.data_dir() + "/blob-index.db"));
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

// Issue 20's acceptance line: a SQLite farm that ran a matrix end to end,
// migrated, then a coordinator started on PostgreSQL shows every job and
// every log byte for byte, and runs a new job. The matrix is the fixture
// matrix's shape (3 pythons x base/dev/test) in shell stages, so it needs no
// Docker: what is moved is the same (jobs, tasks, transitions, logs).
TEST(PostgresE2eTest, ASqliteFarmMigratedToPostgresKeepsEveryJobAndLogByteForByte) {
  const std::string url = NewDatabase();
  ASSERT_FALSE(url.empty());
  Farm farm;
  farm.StartCoordinator();  // SQLite in the data dir
  Process* agent = farm.StartAgent("agent-1", {}, 3);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; })) << agent->Output();
  const std::string matrix = farm.Submit(farm.WritePipeline("matrix.yaml", R"(name: matrix
matrix:
  python: ["3.8", "3.9", "3.10"]
stages:
  - name: base
    shell: "echo base ${python}; seq 1 30000; printf 'tab\there\r\nno newline at the end'"
  - name: dev
    needs: [base]
    shell: "echo dev ${python} >&2; test ${python} != 3.10 || exit 3"
  - name: test
    needs: [dev]
    shell: "echo test ${python}; head -c 200000 /dev/zero | tr '\\0' 'x'"
)"));
  const std::string single = farm.Submit(farm.WritePipeline("one.yaml", R"(name: one
stages:
  - name: s
    shell: "echo just one"
)"));
  for (const std::string& id : {matrix, single}) {
    ASSERT_TRUE(farm.WaitForJobEnd(id, absl::Seconds(120))) << farm.coordinator()->Output();
  }
  std::map<std::string, v1::Job> jobs;
  std::map<std::string, std::string> logs;  // task id -> `musafarm logs` output
  for (const std::string& id : {matrix, single}) {
    absl::StatusOr<v1::Job> job = farm.Job(id);
    ASSERT_TRUE(job.ok()) << job.status();
    jobs[id] = *job;
    for (const v1::Task& t : job->tasks()) {
      if (t.attempt_id() == 0) continue;  // skipped: never ran
      CliResult r = farm.Cli({"logs", t.id()});
      ASSERT_EQ(r.exit_code, 0) << t.id() << ": " << r.err;
      logs[t.id()] = r.out;
    }
  }
  ASSERT_EQ(jobs[matrix].state(), v1::JOB_STATE_FAILED);
  ASSERT_GE(logs.size(), 8u);
  EXPECT_TRUE(absl::StrContains(logs[matrix + "/3.8/base"], "30000\ntab\there\r\nno newline"));

  // While the SQLite coordinator runs, migrate refuses: its lock is held.
  auto busy = Process::Start({MF_COORDINATOR_BIN, "migrate", "--data-dir", farm.data_dir(), "--to",
                              url},
                             farm.dir() + "/migrate-busy.log");
  ASSERT_TRUE(busy.ok()) << busy.status();
  EXPECT_EQ((*busy)->Wait(absl::Seconds(60)), 2) << (*busy)->Output();
  EXPECT_TRUE(absl::StrContains((*busy)->Output(), "is in use by another coordinator"))
      << (*busy)->Output();

  agent->Signal(SIGTERM);
  EXPECT_EQ(agent->Wait(absl::Seconds(60)), 0) << agent->Output();
  farm.StopCoordinator(SIGTERM);
  auto migrate = Process::Start({MF_COORDINATOR_BIN, "migrate", "--data-dir", farm.data_dir(),
                                 "--to", url},
                                farm.dir() + "/migrate.log");
  ASSERT_TRUE(migrate.ok()) << migrate.status();
  ASSERT_EQ((*migrate)->Wait(absl::Seconds(120)), 0) << (*migrate)->Output();
  EXPECT_TRUE(absl::StrContains((*migrate)->Output(), "jobs: 2 row(s)")) << (*migrate)->Output();
  // A second run finds the database holding a farm and refuses, writing nothing.
  auto again = Process::Start({MF_COORDINATOR_BIN, "migrate", "--data-dir", farm.data_dir(),
                               "--to", url},
                              farm.dir() + "/migrate-again.log");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ((*again)->Wait(absl::Seconds(60)), 2) << (*again)->Output();
  EXPECT_TRUE(absl::StrContains((*again)->Output(), "is not empty: table jobs holds 2 row(s)"))
      << (*again)->Output();

  // The farm on PostgreSQL: the SQLite files and logs are moved aside, so
  // whatever it shows comes from the database.
  std::filesystem::rename(farm.data_dir() + "/musafarm.db", farm.dir() + "/old-musafarm.db");
  std::filesystem::rename(farm.data_dir() + "/logs", farm.dir() + "/old-logs");
  farm.StartCoordinator({"--store", url});
  for (const auto& [id, was] : jobs) {
    absl::StatusOr<v1::Job> is = farm.Job(id);
    ASSERT_TRUE(is.ok()) << is.status();
    EXPECT_EQ(is->state(), was.state()) << id;
    ASSERT_EQ(is->tasks_size(), was.tasks_size()) << id;
    for (int i = 0; i < was.tasks_size(); ++i) {
      EXPECT_EQ(is->tasks(i).id(), was.tasks(i).id());
      EXPECT_EQ(is->tasks(i).state(), was.tasks(i).state()) << was.tasks(i).id();
      EXPECT_EQ(is->tasks(i).attempt_id(), was.tasks(i).attempt_id()) << was.tasks(i).id();
      EXPECT_EQ(is->tasks(i).log_size(), was.tasks(i).log_size()) << was.tasks(i).id();
      EXPECT_EQ(is->tasks(i).exit_code(), was.tasks(i).exit_code()) << was.tasks(i).id();
    }
  }
  for (const auto& [task, out] : logs) {
    CliResult r = farm.Cli({"logs", task});
    ASSERT_EQ(r.exit_code, 0) << task << ": " << r.err;
    EXPECT_TRUE(r.out == out) << task << ": the log differs after the migration ("
                              << r.out.size() << " bytes, was " << out.size() << ")";
  }
  // And it runs new work, numbered after the migrated jobs.
  Process* agent2 = farm.StartAgent("agent-2", {}, 2);
  ASSERT_TRUE(WaitFor([&] {
    for (const v1::Agent& a : farm.Agents()) {
      if (a.name() == "agent-2" && a.state() == v1::AGENT_STATE_CONNECTED) return true;
    }
    return false;
  })) << agent2->Output();
  const std::string next = farm.Submit(farm.WritePipeline("next.yaml", R"(stages:
  - name: s
    shell: "echo after the migration"
)"));
  EXPECT_GT(std::stoll(next), std::stoll(single));
  ASSERT_TRUE(farm.WaitForJobEnd(next, absl::Seconds(60))) << farm.coordinator()->Output();
  EXPECT_EQ(farm.Job(next)->state(), v1::JOB_STATE_SUCCEEDED);
  CliResult next_log = farm.Cli({"logs", next + "/s"});
  EXPECT_TRUE(absl::StrContains(next_log.out, "after the migration")) << next_log.out << next_log.err;
  // Nothing of it went to the data dir: logs and blobs are in the database.
  EXPECT_FALSE(std::filesystem::exists(farm.data_dir() + "/logs"));
  EXPECT_FALSE(std::filesystem::exists(farm.data_dir() + "/blob-index.db"));
  agent2->Signal(SIGTERM);
  EXPECT_EQ(agent2->Wait(absl::Seconds(60)), 0) << agent2->Output();
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
