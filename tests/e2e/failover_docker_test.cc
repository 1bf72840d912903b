// Failover between two coordinators on one PostgreSQL database (issue 20) with
// the Docker fixture matrix (tests/e2e/failover_harness.h says what is run and
// checked): the quick start's 15 tasks (per Python: base -> dev -> test-dev,
// release -> test-release) on two agents running the real Docker executor,
// each on a private dockerd, images pushed to and pulled from a private
// registry. Each stage prints known lines 0.1 s apart (the fixture's param
// progress_lines, tests/fixtures/docker/progress.sh) inside the build or the
// container, and the active coordinator goes while a Docker task prints them.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/e2e/docker_rig.h"
#include "tests/e2e/failover_harness.h"

namespace musafarm::e2e {
namespace {

constexpr int kLines = 40;  // per stage, one every 0.1 s

// The known lines task `t` (JOB/VARIANT-PYTHON/STAGE) writes: progress.sh's.
std::vector<std::string> Expected(const v1::Task& t) {
  const std::vector<std::string> parts = absl::StrSplit(t.id(), '/');
  if (parts.size() != 3) return {};
  const std::string python = parts[1].substr(parts[1].find('-') + 1);
  const std::string what = absl::StartsWith(parts[2], "test-") ? "test" : parts[2];
  std::vector<std::string> out;
  for (int i = 1; i <= kLines; ++i) {
    out.push_back(absl::StrCat("mf-line ", what, " ", python, " ", i, " of ", kLines));
  }
  return out;
}

class FailoverDockerE2eTest : public FailoverTest {
 protected:
  void SetUp() override {
    FailoverTest::SetUp();
    ASSERT_EQ(docker_.Start(farm_.dir(), 2), "");
  }

  // The fixture matrix as the quick start runs it: base images built on one
  // agent, dev images on the other from the base pulled through the registry.
  FailoverJob FixtureMatrix() {
    FailoverJob job;
    job.agents = {{"agent-a", {"role=base"}, 3, docker_.AgentFlags(0)},
                  {"agent-b", {"role=dev"}, 3, docker_.AgentFlags(1)}};
    job.pipeline = farm_.WritePipeline("fixture.yaml", docker_.FixturePipeline());
    job.flags = {"--param", absl::StrCat("progress_lines=", kLines)};
    job.tasks = 15;
    job.fail_during = [](const v1::Task& t) {
      return t.spec().run().has_docker_build() || t.spec().run().has_docker_run();
    };
    job.lines = Expected;
    return job;
  }

  DockerRig docker_;  // stopped before the farm's agents are
};

TEST_F(FailoverDockerE2eTest, AStandbyTakesOverFromAKilledActiveMidJob) {
  KillTheActiveMidJob(FixtureMatrix());
}

TEST_F(FailoverDockerE2eTest, AStandbyTakesOverFromAnActiveCutOffFromPostgres) {
  CutTheActiveOffMidJob(FixtureMatrix());
}

}  // namespace
}  // namespace musafarm::e2e
