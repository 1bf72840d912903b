#pragma once

// The nightly diff (issue 14): a schedule's run compared with its previous
// run, per matrix cell and per test, from the parsed test results
// (Task.tests.failed_tests / passed_tests, filled from pytest summaries and
// JUnit XML). Pure: the webhook bodies and the dashboard's job page call it.

#include <string>
#include <vector>

#include "musafarm/v1/farm.pb.h"
#include "nlohmann/json.hpp"

namespace musafarm::coordinator {

// One test in one task of the run: `task` is the task id without its job
// ("dev-3.8/test"), `cell` its matrix cell ("dev-3.8", "" without a matrix).
struct TestChange {
  std::string cell;
  std::string task;
  std::string test;  // e.g. tests/test_ops.py::test_add
  bool operator==(const TestChange& o) const {
    return cell == o.cell && task == o.task && test == o.test;
  }
};

struct NightlyDiff {
  std::string previous_job_id;
  std::vector<TestChange> newly_failing;  // fail now, did not fail in the previous run
  std::vector<TestChange> fixed;          // failed then, pass now (reported this time)
  std::vector<TestChange> still_failing;  // fail in both
  bool empty() const { return newly_failing.empty() && fixed.empty() && still_failing.empty(); }
};

// The matrix cell of a task from its id: "7/dev-3.8/test" -> "dev-3.8"
// ("" without a matrix).
std::string TaskCell(const v1::Task& task);

// Compares `current` with `previous` task by task (tasks match by their id
// without the job id: same cell, same stage). A test counts as fixed only
// where the current task reported results and did not list it failing.
NightlyDiff CompareRuns(const v1::Job& previous, const v1::Job& current);

// {"previous_job_id", "newly_failing": [{"cell", "task", "test"}], "fixed",
// "still_failing"}: the webhook's and the dashboard's shape.
nlohmann::json DiffToJson(const NightlyDiff& diff);

// A few lines for chat webhooks: "newly failing (2): cell: test, ...".
std::string DiffSummary(const NightlyDiff& diff, size_t max_per_kind = 10);

}  // namespace musafarm::coordinator
