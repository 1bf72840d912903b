// The store's write path (coordinator/store.h, the SQLite backend: WAL,
// synchronous=FULL, so each Commit is one fsync'd transaction) in a temp dir
// on this machine's disk: one task transition per commit, and N transitions
// in one commit (what group commit folds together).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/micro/temp_dir.h"
#include "benchmark/benchmark.h"
#include "coordinator/store.h"

namespace {
namespace co = musafarm::coordinator;
namespace v1 = musafarm::v1;

// A job of `n` exec tasks, committed once; the benchmarks then move its tasks.
std::vector<v1::Task> SeedJob(co::Store& store, int n, benchmark::State& state) {
  co::Mutation m;
  v1::Job job;
  job.set_id("j1");
  job.set_name("bench");
  job.set_state(v1::JOB_STATE_RUNNING);
  m.jobs.push_back(job);
  for (int i = 0; i < n; ++i) {
    v1::Task t;
    t.set_id(absl::StrCat("j1/", i, "/build"));
    t.set_job_id("j1");
    t.mutable_spec()->set_stage("build");
    t.set_state(v1::TASK_STATE_QUEUED);
    t.mutable_spec()->mutable_run()->mutable_exec()->add_argv("true");
    m.tasks.push_back(t);
  }
  if (absl::Status s = store.Commit(m); !s.ok()) state.SkipWithError(s.ToString().c_str());
  return m.tasks;
}

// One commit of state.range(0) task transitions (QUEUED <-> ASSIGNED, with
// the transition row), as the core writes them.
void BM_CommitTransitions(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  musafarm::bench::TempDir dir(state, "musafarm-store-bench");
  if (!dir.ok()) return;
  auto store = co::OpenSqliteStore(dir.path() + "/musafarm.db");
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  std::vector<v1::Task> tasks = SeedJob(**store, n, state);
  uint64_t attempt = 0;
  for (auto _ : state) {
    co::Mutation m;
    ++attempt;
    for (v1::Task& t : tasks) {
      const v1::TaskState from = t.state();
      t.set_state(from == v1::TASK_STATE_QUEUED ? v1::TASK_STATE_ASSIGNED : v1::TASK_STATE_QUEUED);
      t.set_attempt_id(attempt);
      t.set_agent("agent-1");
      m.tasks.push_back(t);
      m.transitions.push_back({t.id(), attempt, from, t.state(), 1700000000000000, "bench"});
    }
    if (absl::Status s = (*store)->Commit(m); !s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(state.iterations() * n);
}
// Real time: the commit waits on fsync, which CPU time does not show.
BENCHMARK(BM_CommitTransitions)
    ->Arg(1)
    ->Arg(10)
    ->Arg(100)
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
