// Why a task waits (issue 16, item 1), through the real coordinator, agents
// and CLI: a stage no connected agent can run says so in `status` and as a
// warning at submit, and `submit --strict` refuses the job.
#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

// A docker build on a farm of exec agents, and a test that needs two GPUs on
// agents with one each: neither can ever run there.
constexpr char kPipeline[] = R"(
stages:
  - name: base
    docker_build: {context: ".", tags: ["localhost:5000/waits/base:1"]}
  - name: test
    gpus: 2
    exec: ["true"]
  - name: lint
    exec: ["true"]
)";

constexpr char kDockerWhy[] = "no connected agent runs docker_build";
constexpr char kGpuWhy[] = "needs 2 GPUs; agents have at most 1";

TEST(WaitsTest, TasksNoAgentCanRunSayWhyAtSubmitInStatusAndStrictRefuses) {
  Farm farm;
  farm.StartCoordinator();
  farm.StartAgent("one-gpu-1", {}, 1, {"--gpus", "1", "--gpu-vendor", "mthreads"});
  farm.StartAgent("one-gpu-2", {}, 1, {"--gpus", "1", "--gpu-vendor", "mthreads"});
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 2; })) << "agents did not register";
  const std::string spec = farm.WritePipeline("waits.yaml", kPipeline);

  // --strict: refused with both reasons, nothing created.
  CliResult strict = farm.Cli({"submit", spec, "--strict"});
  EXPECT_NE(strict.exit_code, 0) << strict.out << strict.err;
  EXPECT_TRUE(absl::StrContains(strict.err, absl::StrCat("/base: ", kDockerWhy))) << strict.err;
  EXPECT_TRUE(absl::StrContains(strict.err, absl::StrCat("/test: ", kGpuWhy))) << strict.err;
  CliResult none = farm.Cli({"status", "1"});
  EXPECT_NE(none.exit_code, 0) << none.out;
  EXPECT_TRUE(absl::StrContains(none.err, "no job")) << none.err;

  // Without it: created, with a warning per task that cannot run.
  CliResult submitted = farm.Cli({"submit", spec});
  ASSERT_EQ(submitted.exit_code, 0) << submitted.out << submitted.err;
  EXPECT_TRUE(absl::StrContains(submitted.out, "submitted job")) << submitted.out;
  EXPECT_TRUE(absl::StrContains(submitted.err, "warning: task ")) << submitted.err;
  EXPECT_TRUE(absl::StrContains(submitted.err, absl::StrCat("/base: ", kDockerWhy)))
      << submitted.err;
  EXPECT_TRUE(absl::StrContains(submitted.err, absl::StrCat("/test: ", kGpuWhy))) << submitted.err;
  EXPECT_FALSE(absl::StrContains(submitted.err, "/lint")) << submitted.err;
  // Job 1: the strict submission used no number.
  EXPECT_TRUE(absl::StrContains(submitted.out, "submitted job 1 (3 tasks)")) << submitted.out;
  const std::string id = "1";
  ASSERT_TRUE(farm.WaitForTaskState(id, "lint", v1::TASK_STATE_SUCCEEDED));

  // `status` shows each reason in the REASON column of its queued task.
  CliResult status = farm.Cli({"status", id});
  EXPECT_TRUE(absl::StrContains(status.out, absl::StrCat("waits: ", kDockerWhy))) << status.out;
  EXPECT_TRUE(absl::StrContains(status.out, absl::StrCat("waits: ", kGpuWhy))) << status.out;
  absl::StatusOr<v1::Job> job = farm.Job(id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(FindTask(*job, "base")->state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(FindTask(*job, "base")->wait_reason(), kDockerWhy);
  EXPECT_EQ(FindTask(*job, "test")->wait_reason(), kGpuWhy);
  EXPECT_EQ(FindTask(*job, "lint")->wait_reason(), "");
}

}  // namespace
}  // namespace musafarm::e2e
