// Coordinator core throughput: how many task state transitions per second the
// core sustains with the real SQLite store (WAL, synchronous=FULL) on this
// machine's disk, and what one scheduling round costs. Agents are in-process
// fakes that finish every assignment at once, so the figures are the core's
// own cost: parse + expand, placement, commits, acks.
//
// With --group, each round of agent messages (every agent's started, log and
// result of what it was assigned) is one group, as the coordinator's loop
// groups the messages that queue up while it commits (group commit).
//
//   build/bench/core_bench [--cells N] [--agents N] [--slots N] [--dir DIR] [--group]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "coordinator/core.h"
#include "tests/fakes/fake_agent_connection.h"

namespace mf = musafarm;
using mf::coordinator::Core;

int main(int argc, char** argv) {
  int cells = 100, agents = 4, slots = 8;
  std::string dir = absl::StrCat("/tmp/musafarm-core-bench-", ::getpid());
  bool group = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) == "--group") group = true;
  }
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--group") {
      --i;
      continue;
    }
    if (flag == "--cells") cells = std::atoi(argv[i + 1]);
    if (flag == "--agents") agents = std::atoi(argv[i + 1]);
    if (flag == "--slots") slots = std::atoi(argv[i + 1]);
    if (flag == "--dir") dir = argv[i + 1];
  }
  mf::SetLogLevel("warn");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto store = mf::coordinator::OpenSqliteStore(dir + "/musafarm.db");
  if (!store.ok()) {
    std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
    return 1;
  }
  std::unique_ptr<mf::coordinator::LogStore> logs =
      mf::coordinator::OpenFileLogStore(dir + "/logs");
  Core core(store->get(), logs.get(), mf::RealClock::Get(), mf::coordinator::CoreOptions());
  if (!core.Recover().ok()) return 1;

  std::vector<std::pair<Core::ConnId, std::shared_ptr<mf::testing::FakeAgentConnection>>> conns;
  for (int a = 0; a < agents; ++a) {
    auto conn = std::make_shared<mf::testing::FakeAgentConnection>();
    Core::ConnId id = core.OnAgentConnected(conn);
    mf::v1::AgentMessage reg;
    reg.mutable_register_()->set_name(absl::StrCat("agent-", a));
    reg.mutable_register_()->set_slots(slots);
    core.OnAgentMessage(id, reg);
    conns.emplace_back(id, conn);
  }

  // cells x (build -> test): half the tasks wait on the other half.
  std::string yaml = "name: bench\nmatrix:\n  n: [";
  for (int c = 0; c < cells; ++c) yaml += absl::StrCat(c == 0 ? "" : ", ", "\"", c, "\"");
  yaml +=
      "]\nstages:\n  - name: build\n    exec: [\"true\"]\n  - name: test\n    needs: [build]\n"
      "    exec: [\"true\"]\n";
  mf::v1::SubmitRequest req;
  req.set_spec_yaml(yaml);
  req.set_spec_file("bench.yaml");

  const absl::Time t0 = absl::Now();
  auto job = core.Submit(req);
  if (!job.ok()) {
    std::fprintf(stderr, "%s\n", job.status().ToString().c_str());
    return 1;
  }
  const absl::Duration submit = absl::Now() - t0;
  int completed = 0;
  const std::string log_line = "ok\n";
  int rounds = 0;
  while (completed < job->tasks_size()) {
    bool progress = false;
    ++rounds;
    if (group) core.BeginGroup();
    for (auto& [id, conn] : conns) {
      for (const mf::v1::Assignment& as : conn->TakeAssignments()) {
        progress = true;
        mf::v1::AgentMessage m;
        m.mutable_started()->set_task_id(as.task_id());
        m.mutable_started()->set_attempt_id(as.attempt_id());
        core.OnAgentMessage(id, m);
        m.Clear();
        m.mutable_log()->set_task_id(as.task_id());
        m.mutable_log()->set_attempt_id(as.attempt_id());
        m.mutable_log()->set_data(log_line);
        core.OnAgentMessage(id, m);
        m.Clear();
        m.mutable_result()->set_task_id(as.task_id());
        m.mutable_result()->set_attempt_id(as.attempt_id());
        m.mutable_result()->set_log_size(log_line.size());
        core.OnAgentMessage(id, m);
        ++completed;
      }
    }
    if (group) core.EndGroup();
    if (!progress) {
      std::fprintf(stderr, "stalled at %d of %d tasks\n", completed, job->tasks_size());
      return 1;
    }
  }
  const absl::Duration total = absl::Now() - t0;
  auto done = core.GetJob(job->id());
  std::printf("core_bench: %d tasks on %d agents x %d slots, store %s, %s\n", completed, agents,
              slots, dir.c_str(),
              group ? absl::StrCat("grouped (", rounds, " rounds)").c_str() : "one commit per event");
  std::printf("  job state            %s\n", mf::v1::JobState_Name(done->state()).c_str());
  std::printf("  submit (parse+commit) %8.2f ms\n", absl::ToDoubleMilliseconds(submit));
  std::printf("  submit -> job end     %8.2f ms\n", absl::ToDoubleMilliseconds(total));
  std::printf("  tasks/s               %8.0f\n", completed / absl::ToDoubleSeconds(total));
  std::printf(
      "  per task              %8.3f ms\n",
      absl::ToDoubleMilliseconds(total) / completed);
  std::filesystem::remove_all(dir);
  return done->state() == mf::v1::JOB_STATE_SUCCEEDED ? 0 : 1;
}
