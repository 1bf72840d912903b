// Failover between two coordinators on one PostgreSQL database (issue 20) with
// an exec matrix (tests/e2e/failover_harness.h says what is run and checked):
// three cells of build -> test, six tasks on two agents of two slots, each
// task printing known lines 0.1 s apart. The Docker fixture matrix runs the
// same in failover_docker_test.cc.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/e2e/failover_harness.h"

namespace musafarm::e2e {
namespace {

constexpr int kLines = 60;  // per task, one every 0.1 s: 6 s a stage

const std::vector<std::string> kPythons = {"3.8", "3.9", "3.10"};

std::string Stage(const std::string& name, const std::string& needs) {
  return absl::StrCat("  - name: ", name, "\n", needs.empty() ? "" : "    needs: [" + needs + "]\n",
                      "    shell: \"i=0; while [ $i -lt ", kLines, " ]; do i=$((i+1)); echo \\\"",
                      "mf-line ", name, " ${python} $i of ", kLines,
                      " abcdefghijklmnopqrstuvwxyz0123456789\\\"; sleep 0.1; done\"\n");
}

// The known lines task `t` writes.
std::vector<std::string> Expected(const v1::Task& t) {
  const std::string stage = absl::StrContains(t.id(), "/build") ? "build" : "test";
  std::string python;  // the cell's value is in the task id
  for (const std::string& p : kPythons) {
    if (absl::StrContains(t.id(), p)) python = p;
  }
  std::vector<std::string> out;
  for (int i = 1; i <= kLines; ++i) {
    out.push_back(absl::StrCat("mf-line ", stage, " ", python, " ", i, " of ", kLines,
                               " abcdefghijklmnopqrstuvwxyz0123456789"));
  }
  return out;
}

class FailoverE2eTest : public FailoverTest {
 protected:
  FailoverJob ExecMatrix() {
    FailoverJob job;
    job.agents = {{"agent-1", {}, 2, {}}, {"agent-2", {}, 2, {}}};
    job.pipeline = farm_.WritePipeline(
        "failover.yaml",
        absl::StrCat("name: failover\nmatrix:\n  python: [\"3.8\", \"3.9\", \"3.10\"]\nstages:\n",
                     Stage("build", ""), Stage("test", "build")));
    job.tasks = 6;
    job.lines = Expected;
    return job;
  }
};

TEST_F(FailoverE2eTest, AStandbyTakesOverFromAKilledActiveMidJob) {
  KillTheActiveMidJob(ExecMatrix());
}

TEST_F(FailoverE2eTest, AStandbyTakesOverFromAnActiveCutOffFromPostgres) {
  CutTheActiveOffMidJob(ExecMatrix());
}

}  // namespace
}  // namespace musafarm::e2e
