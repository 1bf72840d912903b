// Coordinator startup and finished-job reads with a long history (issue 16,
// item 5): a store holding N finished jobs (one task each, written in one
// bulk transaction) and a few unfinished ones. Measures
//   - "load all": Store::LoadJobs and a JobTable of every job, what
//     Core::Recover did before finished jobs left memory;
//   - Core::Recover now (unfinished jobs only), and the rows it read;
//   - GetJob of a finished job (an indexed read per call) and ListJobs(50).
//
//   build/bench/startup_bench [--jobs N] [--dir DIR]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "coordinator/core.h"
#include "coordinator/job_table.h"
#include "tests/fakes/fake_clock.h"

namespace mf = musafarm;
using mf::coordinator::Core;

namespace {
double Ms(absl::Duration d) { return absl::ToDoubleMilliseconds(d); }
}  // namespace

int main(int argc, char** argv) {
  int jobs = 100'000;
  std::string dir = absl::StrCat("/tmp/musafarm-startup-bench-", ::getpid());
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--jobs") jobs = std::atoi(argv[i + 1]);
    if (flag == "--dir") dir = argv[i + 1];
  }
  mf::SetLogLevel("warn");
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string db = dir + "/musafarm.db";
  {
    auto store = mf::coordinator::OpenSqliteStore(db);
    if (!store.ok()) {
      std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
      return 1;
    }
    mf::coordinator::Mutation m;
    for (int i = 1; i <= jobs + 5; ++i) {
      const bool running = i > jobs;
      mf::v1::Job job;
      job.set_id(absl::StrCat(i));
      job.set_name("nightly");
      job.set_state(running ? mf::v1::JOB_STATE_RUNNING : mf::v1::JOB_STATE_SUCCEEDED);
      job.set_created_us(i);
      job.set_ended_us(running ? 0 : i + 1);
      m.jobs.push_back(job);
      mf::v1::Task& task = m.tasks.emplace_back();
      task.set_id(absl::StrCat(i, "/py-3.10/build"));
      task.set_job_id(job.id());
      task.set_state(running ? mf::v1::TASK_STATE_QUEUED : mf::v1::TASK_STATE_SUCCEEDED);
      task.mutable_spec()->mutable_run()->mutable_exec()->add_argv("true");
    }
    const absl::Time start = absl::Now();
    if (absl::Status s = (*store)->Commit(m); !s.ok()) {
      std::fprintf(stderr, "%s\n", s.ToString().c_str());
      return 1;
    }
    std::printf("bulk insert of %d jobs + tasks: %.0f ms\n", jobs + 5, Ms(absl::Now() - start));
  }
  {  // before: every job loaded and indexed
    auto store = mf::coordinator::OpenSqliteStore(db);
    const absl::Time start = absl::Now();
    auto all = (*store)->LoadJobs();
    mf::coordinator::JobTable table;
    for (mf::v1::Job& job : *all) table.Add(std::move(job), {});
    std::printf("load all (before): %zu jobs in %.0f ms\n", table.size(), Ms(absl::Now() - start));
  }
  auto store = mf::coordinator::OpenSqliteStore(db);
  auto logs = mf::coordinator::OpenFileLogStore(dir + "/logs");
  mf::testing::FakeClock clock;
  Core core(store->get(), logs.get(), &clock, mf::coordinator::CoreOptions());
  absl::Time start = absl::Now();
  if (absl::Status s = core.Recover(); !s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  std::printf("Core::Recover (after): %.1f ms, %zu jobs held, %llu rows read\n",
              Ms(absl::Now() - start), core.jobs_held(),
              static_cast<unsigned long long>((*store)->archive().rows_read()));
  constexpr int kReads = 2000;
  start = absl::Now();
  for (int i = 0; i < kReads; ++i) {
    auto job = core.GetJob(absl::StrCat(1 + (i * 7919) % jobs));
    if (!job.ok()) return 1;
  }
  std::printf("GetJob of a finished job: %.1f us each (%d reads)\n",
              absl::ToDoubleMicroseconds((absl::Now() - start) / kReads), kReads);
  start = absl::Now();
  mf::coordinator::JobFilter newest;  // the default: the 50 newest
  for (int i = 0; i < 100; ++i) {
    if (core.ListJobs(newest).size() != 50) return 1;
  }
  std::printf("ListJobs(50): %.2f ms each\n", Ms((absl::Now() - start) / 100));
  std::filesystem::remove_all(dir);
  return 0;
}
