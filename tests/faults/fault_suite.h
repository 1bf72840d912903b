#pragma once

// Shared pieces of the fault suite (tests/faults/README.md): seeds, a workload
// whose log bytes are known in advance, and the invariant checks run after
// every faulted run.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/task_state.h"
#include "gtest/gtest.h"
#include "musafarm/v1/farm.pb.h"
#include "tests/e2e/harness.h"

namespace musafarm::faults {

// The fixed seeds of a scenario, or only $MF_FAULT_SEED when it is set (to
// rerun one run: MF_FAULT_SEED=17 build/tests/faults/farm_faults_test).
std::vector<uint64_t> Seeds(const std::vector<uint64_t>& fixed);
// For INSTANTIATE_TEST_SUITE_P: names a seed's test "seed_17".
std::string SeedName(uint64_t seed);
struct SeedTestName {
  std::string operator()(const ::testing::TestParamInfo<uint64_t>& p) const {
    return SeedName(p.param);
  }
};

// One stage of a workload. Every task prints `lines` numbered lines, each
// `width` bytes with its newline, sleeping `pause` after every `every` lines.
// Each line goes both to stdout (the task's log) and to
// <out dir>/<attempt id>.out, and the shell's pid goes to <out dir>/<attempt id>.pid.
struct StageShape {
  std::string name;
  int lines = 10;
  int width = 64;
  int every = 10;
  std::string pause = "0.1";
  std::vector<std::string> needs;
  // When set: on the agent of this name, the task keeps running (silently)
  // after its lines until it is killed.
  std::string hold_on_agent;
  int retries = 0;
  std::vector<std::string> labels;  // agent labels the stage requires
  // When set: a docker_run stage in this image (it needs sh, printf, sleep)
  // with the out dir mounted at /out, instead of a shell stage.
  std::string docker_image;
};

// A pipeline of shell stages over a matrix axis `cell`; task ids are
// "<job>/<cell>/<stage>". Everything a task prints is a function of its id,
// so the log of the attempt that completed is known byte for byte.
class Workload {
 public:
  Workload(std::string out_dir, std::vector<std::string> cells, std::vector<StageShape> stages);
  // 3 cells x 4 stages = 12 tasks: s1; s2 and s3 need s1; s4 needs s2 and s3.
  // s2 prints 150 KB (more than two 64 KiB log chunks). Tasks last 0.6-1.5 s;
  // a job ~3.5 s on two agents with two slots each.
  static Workload Standard(const std::string& out_dir);

  std::string Yaml() const;
  // "<cell>/<stage>" of every task, in matrix order.
  std::vector<std::string> Tasks() const;
  std::string ExpectedLog(const std::string& task) const;  // by "<cell>/<stage>"
  const std::string& out_dir() const { return out_dir_; }

 private:
  const StageShape* Stage(const std::string& name) const;
  std::string out_dir_;
  std::vector<std::string> cells_;
  std::vector<StageShape> stages_;
};

// A stage with the common fields set (the others keep their defaults).
StageShape Shape(std::string name, int lines, int width, int every, std::string pause,
                 std::vector<std::string> needs = {});

// The expected lines of a task, as the stage's script prints them.
std::string ExpectedLines(const std::string& task, int lines, int width);

// One row of the coordinator's `transitions` table.
struct TransitionRow {
  std::string task_id;
  uint64_t attempt_id = 0;
  v1::TaskState from = v1::TASK_STATE_UNSPECIFIED;
  v1::TaskState to = v1::TASK_STATE_UNSPECIFIED;
  int64_t at_us = 0;
  std::string reason;
};
// Every transition, in commit order; an error string in `error` if the database cannot be read.
std::vector<TransitionRow> ReadTransitions(const std::string& db_path, std::string* error);

// What CheckRun found. `problems` says what broke, one line each.
struct RunReport {
  int submitted = 0;
  int completed = 0;        // ended SUCCEEDED (or the wanted state)
  int lost = 0;             // did not end as wanted, or never ended
  int completed_twice = 0;  // more than one terminal transition, or one not by the final attempt
  uint64_t written = 0;     // bytes the completed attempts wrote (their .out files)
  uint64_t stored = 0;      // bytes `musafarm logs` returned for them
  std::vector<std::string> problems;
  std::vector<TransitionRow> transitions;  // of this job's tasks
  v1::Job job;                             // as last seen
};

// The invariant checks after a faulted run:
//  1. the job reaches a terminal state within `bound` (polled, not slept);
//  2. every task of `workload` ended in `want` (SUCCEEDED by default);
//  3. for each task that did: its stored log (`musafarm logs`) equals, byte
//     for byte, both the expected output and what the completed attempt wrote;
//  4. the coordinator is stopped (SIGTERM) and its database read: each task
//     has exactly one transition into a terminal state, made by the task's
//     final attempt, and nothing after it.
// Prints "seed=S scenario=X tasks submitted=N completed=N lost=N
// completed_twice=N log_bytes written=W stored=S" and the problems, and adds
// a gtest failure for each problem.
RunReport CheckRun(e2e::Farm& farm, const std::string& job_id, const Workload& workload,
                   uint64_t seed, const std::string& scenario,
                   absl::Duration bound = absl::Seconds(90),
                   v1::TaskState want = v1::TASK_STATE_SUCCEEDED);

// The summary line alone (CheckRun prints it).
std::string SummaryLine(uint64_t seed, const std::string& scenario, const RunReport& r);

// Which agent each RUNNING or ASSIGNED task of the job is on, now.
std::vector<std::string> BusyAgents(e2e::Farm& farm, const std::string& job_id);

// True when `pid` is gone (or a zombie nobody has reaped yet).
bool ProcessGone(int pid);

}  // namespace musafarm::faults
