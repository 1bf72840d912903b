// End-to-end tests of issue 16's "healthy hosts" and "test results everywhere"
// with the real coordinator, agents and CLI on loopback (no Docker: the Docker
// daemon faults are in docker_health_test.cc).
#include <filesystem>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A pytest stand-in: prints a text summary that undercounts, and writes a
// JUnit XML report (what `pytest --junitxml=reports/junit.xml` writes) with
// one failure, one error, one skip and two passes; exits 1 as pytest does.
constexpr char kPytestJUnitPipeline[] = R"yaml(name: junit
stages:
  - name: test
    shell: |
      mkdir -p reports
      cat > reports/junit.xml <<'XML'
      <?xml version="1.0" encoding="utf-8"?>
      <testsuites><testsuite name="pytest" errors="1" failures="1" skipped="1" tests="5">
      <testcase classname="tests.unit.test_ops" name="test_add[int]" time="0.01"/>
      <testcase classname="tests.unit.test_ops" name="test_add[half]" time="0.01"><failure message="assert 1 == 2">E assert 1 == 2</failure></testcase>
      <testcase classname="tests.unit.test_ops.TestMm" name="test_mm" time="0"><error message="no device">E RuntimeError</error></testcase>
      <testcase classname="tests.unit.test_ops" name="test_skip" time="0"><skipped message="no GPU"/></testcase>
      <testcase classname="tests.unit.test_io" name="test_read" time="0.02"/>
      </testsuite></testsuites>
      XML
      echo "==== 1 failed, 1 passed in 0.05s ====" | tee ut_output.txt
      exit 1
    collect: [reports/junit.xml, ut_output.txt, ../escape.txt]
)yaml";

TEST(TestResultsE2eTest, AnExecPipelinesCollectedJUnitBecomesCountsAndFailingNames) {
  Farm farm;
  farm.StartCoordinator();
  farm.StartAgent("agent-1", {}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; }));

  // A path leaving the work dir is refused at submit, with where it is.
  const std::string pipeline = farm.WritePipeline("junit.yaml", kPytestJUnitPipeline);
  CliResult bad = farm.Cli({"submit", pipeline});
  EXPECT_EQ(bad.exit_code, 2) << bad.out << bad.err;
  EXPECT_THAT(bad.err, HasSubstr("stages[0].collect[2]: '../escape.txt' leaves the task's work dir"));

  WriteFile(pipeline, absl::StrReplaceAll(kPytestJUnitPipeline, {{", ../escape.txt", ""}}));
  const std::string id = farm.Submit(pipeline);
  ASSERT_TRUE(farm.WaitForJobEnd(id));
  absl::StatusOr<v1::Job> job = farm.Job(id);
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::Task* task = FindTask(*job, "test");
  ASSERT_NE(task, nullptr);
  EXPECT_EQ(task->state(), v1::TASK_STATE_FAILED);
  // The JUnit report wins over the text summary ("1 failed, 1 passed").
  EXPECT_EQ(task->tests().passed(), 2);
  EXPECT_EQ(task->tests().failed(), 1);
  EXPECT_EQ(task->tests().errors(), 1);
  EXPECT_EQ(task->tests().skipped(), 1);
  EXPECT_THAT(task->tests().failed_tests(), ElementsAre("tests.unit.test_ops.TestMm::test_mm",
                                                        "tests.unit.test_ops::test_add[half]"));
  // Both files came back as artifacts.
  CliResult artifacts = farm.Cli({"artifacts", absl::StrCat(id, "/test")});
  EXPECT_THAT(artifacts.out, HasSubstr("junit.xml"));
  EXPECT_THAT(artifacts.out, HasSubstr("ut_output.txt"));
  // `musafarm results` counts them, and its JUnit export names the failing
  // tests as the report did (classname and name round-trip).
  const std::string junit_out = farm.dir() + "/results.xml";
  CliResult results = farm.Cli({"results", id, "--junit", junit_out});
  EXPECT_EQ(results.exit_code, 1) << results.out << results.err;
  EXPECT_THAT(ReadFile(junit_out),
              HasSubstr("<testcase classname=\"tests.unit.test_ops\" name=\"test_add[half]\">"));
}

// A GPU that starts failing (issue 16, item 3): a fake probe script, whose
// answer the test changes with a file, stands for mthreads-gmi. The test on
// GPU 1 fails there, the probe after it fences GPU 1, the attempt goes back
// and reruns on GPU 0 with its retries unused; no later task gets GPU 1, and
// `musafarm agents` says it is fenced until the probe passes again.
TEST(GpuFenceE2eTest, AFailingGpuIsFencedAndItsTestRerunsElsewhereWithoutARetry) {
  Farm farm;
  const std::string flags = farm.dir() + "/gpu-flags";
  std::filesystem::create_directories(flags);
  const std::string probe = farm.dir() + "/probe.sh";
  WriteFile(probe, absl::StrCat("#!/bin/sh\n[ -e ", flags, "/bad-$1 ] && { echo \"GPU $1: ECC error\"; exit 1; }\nexit 0\n"));
  std::filesystem::permissions(probe, std::filesystem::perms::owner_all);
  farm.StartCoordinator();
  farm.StartAgent("gpu-a", {}, 4,
                  {"--gpus", "2", "--gpu-vendor", "mthreads", "--gpu-probe-command",
                   absl::StrCat(probe, " {gpu}"), "--gpu-recheck-interval", "0.2"});
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; }));

  // GPU 1 breaks: its probe fails and so does any test on it.
  WriteFile(flags + "/bad-1", "");
  const std::string pipeline = farm.WritePipeline("gpu.yaml", absl::StrCat(R"yaml(name: gpu
matrix: {n: ["1", "2", "3", "4"]}
stages:
  - name: test
    gpus: 1
    shell: |
      echo "n=${n} on GPU $MTHREADS_VISIBLE_DEVICES"
      [ -e )yaml", flags, R"yaml(/bad-$MTHREADS_VISIBLE_DEVICES ] && { echo "GPU broken"; exit 1; }
      sleep 0.3
)yaml"));
  const std::string id = farm.Submit(pipeline);
  ASSERT_TRUE(farm.WaitForJobEnd(id));
  absl::StatusOr<v1::Job> job = farm.Job(id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
  int reruns = 0;
  for (const v1::Task& t : job->tasks()) {
    EXPECT_EQ(t.state(), v1::TASK_STATE_SUCCEEDED) << t.id();
    EXPECT_THAT(t.gpu_ids(), ElementsAre(0)) << t.id() << " succeeded on a fenced GPU";
    if (t.attempts() > 1) ++reruns;
  }
  // Two tasks started at once, on GPUs 0 and 1: the one on GPU 1 ran again,
  // and succeeded although the stage has no retry (retries: 0).
  EXPECT_EQ(reruns, 1);
  CliResult agents = farm.Cli({"agents"});
  EXPECT_THAT(agents.out, HasSubstr("gpu-a fenced GPU 1 (never handed out): GPU 1: `"));
  EXPECT_THAT(agents.out, HasSubstr("exit 1: GPU 1: ECC error"));

  // GPU 1 passes its probe again: it is handed out again.
  std::filesystem::remove(flags + "/bad-1");
  ASSERT_TRUE(WaitFor([&] {
    std::vector<v1::Agent> a = farm.Agents();
    return a.size() == 1 && a[0].fenced_gpus_size() == 0 && a[0].free_gpus() == 2;
  }));
  EXPECT_THAT(farm.Cli({"agents"}).out, ::testing::Not(HasSubstr("fenced")));
}

}  // namespace
}  // namespace musafarm::e2e
