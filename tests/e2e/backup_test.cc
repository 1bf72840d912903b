// `musafarm-coordinator backup` while a job runs, then `restore` into a fresh
// data dir and a coordinator started on it (issue 15, point 4).
#include <signal.h>

#include <filesystem>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

bool Terminal(v1::TaskState s) {
  return s == v1::TASK_STATE_SUCCEEDED || s == v1::TASK_STATE_FAILED ||
         s == v1::TASK_STATE_CANCELLED || s == v1::TASK_STATE_SKIPPED;
}

int RunCoordinatorCommand(Farm& farm, const std::vector<std::string>& args, std::string* output) {
  std::vector<std::string> argv = {MF_COORDINATOR_BIN};
  argv.insert(argv.end(), args.begin(), args.end());
  std::filesystem::remove(farm.dir() + "/" + args[0] + ".out");  // Process appends
  return RunToExit(argv, farm.dir() + "/" + args[0] + ".out", output, absl::Seconds(60));
}

// TLS on, so that the restored coordinator must also bring back the farm CA
// (pki/): with a new CA the agent's certificate would be refused. Exec
// stages: shell stages need a policy grant under TLS.
TEST(BackupE2eTest, BackupWhileAJobRunsRestoresEveryFinishedJobWithByteIdenticalLogs) {
  FarmOptions options;
  options.tls = true;
  Farm farm(options);
  farm.StartCoordinator();
  farm.StartAgent("agent-1", {"os=linux"}, 2);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; })) << "agent did not register";

  const std::string ok = farm.WritePipeline("ok.yaml", R"(
stages:
  - name: numbers
    exec: ["sh", "-c", "seq 1 3000; printf 'no newline at the end'"]
  - name: after
    needs: [numbers]
    exec: ["echo", "after"]
)");
  const std::string failing = farm.WritePipeline("failing.yaml", R"(
stages:
  - name: broken
    exec: ["sh", "-c", "echo to stderr >&2; echo to stdout; exit 3"]
)");
  const std::string gate = farm.dir() + "/gate";
  const std::string running = farm.WritePipeline("running.yaml", absl::StrCat(R"(
stages:
  - name: quick
    exec: ["echo", "quick one"]
  - name: waiter
    exec: ["sh", "-c", "echo waiting; while [ ! -e )", gate, R"( ]; do sleep 0.05; done; echo through"]
)"));
  const std::string ok_id = farm.Submit(ok);
  const std::string failing_id = farm.Submit(failing);
  ASSERT_TRUE(farm.WaitForJobEnd(ok_id));
  ASSERT_TRUE(farm.WaitForJobEnd(failing_id));
  const std::string running_id = farm.Submit(running);
  ASSERT_TRUE(farm.WaitForTaskState(running_id, "quick", v1::TASK_STATE_SUCCEEDED));
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(farm.Cli({"logs", running_id + "/waiter"}).out, "waiting");
  }));

  // The backup, from another process, while `waiter` runs and writes.
  const std::string backup = farm.dir() + "/backup";
  std::string out;
  ASSERT_EQ(RunCoordinatorCommand(farm, {"backup", backup, "--data-dir", farm.data_dir()}, &out), 0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "backup of ")) << out;

  // What a user saw of every task finished at backup time.
  std::map<std::string, v1::Job> jobs_before;
  std::map<std::string, std::string> logs_before;
  for (const std::string& id : {ok_id, failing_id, running_id}) {
    auto job = farm.Job(id);
    ASSERT_TRUE(job.ok()) << job.status();
    jobs_before[id] = *job;
    for (const v1::Task& t : job->tasks()) {
      if (!Terminal(t.state())) continue;
      CliResult r = farm.Cli({"logs", t.id()});
      ASSERT_EQ(r.exit_code, 0) << t.id() << r.err;
      logs_before[t.id()] = r.out;
    }
  }
  ASSERT_EQ(jobs_before[failing_id].state(), v1::JOB_STATE_FAILED);
  ASSERT_EQ(logs_before.size(), 4u);  // numbers, after, broken, quick
  EXPECT_TRUE(absl::EndsWith(logs_before[ok_id + "/numbers"], "3000\nno newline at the end"));

  // The farm goes on after the backup: `waiter` finishes.
  WriteFile(gate, "");
  ASSERT_TRUE(farm.WaitForJobEnd(running_id));

  // Disaster: the data dir is gone. Restore into a fresh one and start there.
  farm.StopCoordinator(SIGTERM);
  std::filesystem::rename(farm.data_dir(), farm.dir() + "/lost-data-dir");
  ASSERT_EQ(RunCoordinatorCommand(farm, {"restore", backup, "--data-dir", farm.data_dir()}, &out), 0)
      << out;
  // A second restore onto it is refused (exit 2) and changes nothing.
  EXPECT_EQ(RunCoordinatorCommand(farm, {"restore", backup, "--data-dir", farm.data_dir()}, &out), 2)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "already holds musafarm.db")) << out;
  farm.StartCoordinator();

  for (const auto& [id, before] : jobs_before) {
    auto job = farm.Job(id);
    ASSERT_TRUE(job.ok()) << id << ": " << job.status();
    ASSERT_EQ(job->tasks_size(), before.tasks_size());
    if (id != running_id) {
      EXPECT_EQ(job->state(), before.state()) << id;
    }
    for (int i = 0; i < before.tasks_size(); ++i) {
      const v1::Task& was = before.tasks(i);
      if (!Terminal(was.state())) continue;
      EXPECT_EQ(job->tasks(i).state(), was.state()) << was.id();
      EXPECT_EQ(job->tasks(i).exit_code(), was.exit_code()) << was.id();
      CliResult r = farm.Cli({"logs", was.id()});
      ASSERT_EQ(r.exit_code, 0) << was.id() << r.err;
      EXPECT_EQ(r.out, logs_before[was.id()]) << was.id() << ": log differs after restore";
    }
  }
  // The restored farm works: the agent (certificate from the restored CA) is
  // back, and the job that was running at backup time comes to an end.
  ASSERT_TRUE(WaitFor([&] {
    auto agents = farm.Agents();
    return agents.size() == 1 && agents[0].state() == v1::AGENT_STATE_CONNECTED;
  })) << farm.coordinator()->Output();
  ASSERT_TRUE(farm.WaitForJobEnd(running_id, absl::Seconds(120)));
  auto job = farm.Job(running_id);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
}

}  // namespace
}  // namespace musafarm::e2e
