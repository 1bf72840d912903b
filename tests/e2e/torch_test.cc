// End to end for the torch_musa pipeline's own behaviour (issue 18), with a
// real private dockerd, coordinator, agent and CLI; fixture images from
// tests/fixtures/docker. One farm serves every case (started by the first
// test, stopped after the last): a dockerd start is the slow part.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"
#include "tests/support/private_dockerd.h"

namespace musafarm::e2e {
namespace {

namespace fs = std::filesystem;

const std::string kSource = MF_SOURCE_DIR;

class TorchTest : public ::testing::Test {
 protected:
  // The Farm names its directory after the running test, so it is made in
  // the first test's SetUp rather than in SetUpTestSuite.
  static void StartFarm() {
    const std::string missing = test_support::PrivateDockerd::MissingTools(kSource);
    ASSERT_EQ(missing, "") << "run scripts/docker/install.sh";
    // Not under the farm's directory, which the Farm removes before the
    // daemon is stopped.
    const std::string error = dockerd_.Start(
        kSource, absl::StrCat(fs::temp_directory_path().string(), "/musafarm-torch-dockerd-",
                              ::getpid()),
        "musafarm/busybox:test");
    ASSERT_EQ(error, "");
    host_ = dockerd_.host();
    // The build context: the fixture files and the real start-up check.
    context_ = farm_->dir() + "/context";
    fs::create_directories(context_);
    for (const auto& entry : fs::directory_iterator(kSource + "/tests/fixtures/docker")) {
      fs::copy(entry.path(), context_ / entry.path().filename());
    }
    fs::copy(kSource + "/dockerfiles/common/check_status.sh", context_ / "check_status.sh");
    farm_->StartCoordinator();
    farm_->StartAgent("agent-a", {}, 4,
                      {"--docker", "--buildkit", "--docker-host", host_, "--gpus", "2",
                       "--gpu-vendor", "mthreads"});
    ASSERT_TRUE(WaitFor([] { return farm_->Agents().size() == 1; }));
    ready_ = true;
  }

  static void TearDownTestSuite() {
    if (farm_ == nullptr) return;
    delete farm_;  // agents first: they may still talk to the daemon
    farm_ = nullptr;
    dockerd_.Stop();
  }

  void SetUp() override {
    if (farm_ == nullptr) {
      farm_ = new Farm();
      StartFarm();
    }
    ASSERT_TRUE(ready_) << "the shared farm did not start (see the first test)";
  }

  // A fixture pipeline with @CONTEXT@ filled in, written into the farm dir.
  static std::string Pipeline(const std::string& file) {
    const std::string yaml = absl::StrReplaceAll(
        ReadFile(kSource + "/tests/fixtures/docker/" + file), {{"@CONTEXT@", context_.string()}});
    return farm_->WritePipeline(file, yaml);
  }

  static Farm* farm_;
  static bool ready_;
  static test_support::PrivateDockerd dockerd_;
  static std::string host_;
  static fs::path context_;
};

// The job id of "submitted job 7 (3 tasks)", the first line `submit` prints.
std::string JobIdOf(const std::string& out) {
  const std::string prefix = "submitted job ";
  const size_t at = out.find(prefix);
  if (at == std::string::npos) return "";
  const size_t end = out.find(' ', at + prefix.size());
  return out.substr(at + prefix.size(), end - at - prefix.size());
}

Farm* TorchTest::farm_ = nullptr;
bool TorchTest::ready_ = false;
test_support::PrivateDockerd TorchTest::dockerd_;
std::string TorchTest::host_;
fs::path TorchTest::context_;

// Issue 18, "honest verdicts": a suite that crashes before its summary, one
// that exits 1 after a passing summary, one whose output is never written and a
// release check with no device visible each fail the task with a reason naming
// the suite (or the GPU); the happy paths succeed.
TEST_F(TorchTest, TestStagesFailOnEverySuiteFailureAndSayWhy) {
  CliResult r = farm_->Cli({"submit", Pipeline("verdicts.yaml.in"), "--watch"},
                           absl::Seconds(300));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  const std::string id = JobIdOf(r.out);
  absl::StatusOr<v1::Job> job = farm_->Job(id);
  ASSERT_TRUE(job.ok()) << job.status();
  struct Want {
    const char* task;
    v1::TaskState state;
    const char* reason;
  };
  const Want wants[] = {
      {"pass/test-dev", v1::TASK_STATE_SUCCEEDED, ""},
      {"crash/test-dev", v1::TASK_STATE_FAILED,
       "suite unit: exited 139 (killed by signal 11) before printing a test summary"},
      {"exit1/test-dev", v1::TASK_STATE_FAILED,
       "suite unit: exited 1 (pytest: tests failed) although its summary says 2 passed, "
       "1 skipped"},
      {"no-output/test-dev", v1::TASK_STATE_FAILED,
       "suite unit: exited 0 and its output /home/ut_output.txt is missing"},
      {"release/test-release", v1::TASK_STATE_SUCCEEDED, ""},
      {"no-device/test-release", v1::TASK_STATE_FAILED, "exit code 1"},
  };
  for (const Want& w : wants) {
    const v1::Task* t = FindTask(*job, w.task);
    ASSERT_NE(t, nullptr) << w.task;
    EXPECT_EQ(t->state(), w.state) << w.task << ": " << t->reason();
    EXPECT_EQ(t->reason(), w.reason) << w.task;
  }
  // The passing cell's suites were counted, and their statuses came back too.
  const v1::Task* pass = FindTask(*job, "pass/test-dev");
  ASSERT_NE(pass, nullptr);
  EXPECT_EQ(pass->tests().passed(), 4);
  EXPECT_EQ(pass->tests().skipped(), 1);
  std::set<std::string> names;
  for (const auto& a : pass->artifacts()) names.insert(a.name());
  EXPECT_EQ(names, (std::set<std::string>{"ut_output.txt", "ut_exit_code.txt",
                                          "integration_test_output.txt",
                                          "integration_test_exit_code.txt"}));
  // The failing release check names the GPU the task held, as mthreads-gmi does.
  const std::string log = farm_->Cli({"logs", id + "/no-device/test-release"}).out;
  EXPECT_TRUE(absl::StrContains(
      log, "no MUSA device visible to torch_musa although this task holds GPU 0 : MTT S4000 "
           "(MTHREADS_VISIBLE_DEVICES="))
      << log;
  EXPECT_TRUE(absl::StrContains(farm_->Cli({"logs", id + "/release/test-release"}).out,
                                "check_status: ok (GPU 0 : MTT S4000)"));
}

// What the fixture image of a per-cell build recorded for secret `id`.
std::string Recorded(const std::string& host, const std::string& image, const std::string& id,
                     const std::string& log) {
  std::string out;
  fs::remove(log);  // the child appends to it
  if (RunToExit({"/usr/bin/docker", "-H", host, "run", "--rm", "--network", "none", image, "cat",
                 "/record/" + id},
                log, &out, absl::Seconds(60)) != 0) {
    return "(no record: " + out + ")";
  }
  return std::string(absl::StripAsciiWhitespace(out));
}

// Issue 18, "per-cell inputs": a three-Python release job whose wheel URL
// differs by Python (build_all.sh's loop in one command) gives each cell its
// own URL, and only that one.
TEST_F(TorchTest, EachPythonCellGetsItsOwnWheelUrl) {
  const std::string url = "https://dl.example/whl/torch-2.0.0-cp3";
  CliResult r = farm_->Cli({"submit", Pipeline("cells.yaml.in"), "--watch", "--python_verison",
                            "3.8,3.9,3.10", "--torch_whl_url",
                            absl::StrCat("3.8=", url, "8.whl,3.9=", url, "9.whl,3.10=", url,
                                         "10.whl")},
                           absl::Seconds(300));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const std::string id = JobIdOf(r.out);
  absl::StatusOr<v1::Job> job = farm_->Job(id);
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->tasks_size(), 3);
  for (const char* py : {"3.8", "3.9", "3.10"}) {
    SCOPED_TRACE(py);
    const v1::Task* t = FindTask(*job, absl::StrCat("any-", py, "/release"));
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->state(), v1::TASK_STATE_SUCCEEDED) << t->reason();
    EXPECT_EQ(t->spec().run().secret_sources().at("TORCH_WHL_URL"),
              absl::StrCat("TORCH_WHL_URL@python=", py));
    const std::string digits = absl::StrReplaceAll(py, {{"3.", ""}});
    EXPECT_EQ(Recorded(host_, absl::StrCat("musafarm/torch_musa-cells:any-py", py),
                       "torch_whl_url", farm_->dir() + "/record.log"),
              absl::StrCat(url, digits, ".whl"));
    // The URLs are secrets: no log shows them.
    EXPECT_FALSE(absl::StrContains(farm_->Cli({"logs", t->id()}).out, "dl.example"));
  }
}

// Issue 18, "per-architecture inputs": agents report their GPU architecture
// from mthreads-gmi (fakes for an MTT S4000 host, qy2, and an MTT S5000 one,
// ph1); a two-architecture job runs each cell on an agent of that
// architecture with that architecture's toolkit URL.
TEST_F(TorchTest, EachArchitectureCellRunsOnItsArchitectureWithItsUrls) {
  const char* saved = ::getenv("PATH");
  const std::string path = saved == nullptr ? "/usr/bin:/bin" : saved;
  for (const auto& [arch, model] : {std::pair<std::string, std::string>{"qy2", "MTT S4000"},
                                    {"ph1", "MTT S5000"}}) {
    const std::string bin = farm_->dir() + "/bin-" + arch;
    fs::create_directories(bin);
    WriteFile(bin + "/mthreads-gmi",
              absl::StrCat("#!/bin/sh\necho 'GPU 0 : ", model, " (UUID : GPU-0000-", arch,
                           ")'\n"));
    fs::permissions(bin + "/mthreads-gmi", fs::perms::owner_all);
    // The agent detects its GPUs at start, from the PATH it inherits.
    ::setenv("PATH", (bin + ":" + path).c_str(), 1);
    farm_->StartAgent("agent-" + arch, {}, 2, {"--docker", "--buildkit", "--docker-host", host_});
    ::setenv("PATH", path.c_str(), 1);
  }
  ASSERT_TRUE(WaitFor([] { return farm_->Agents().size() == 3; }));
  for (const v1::Agent& a : farm_->Agents()) {
    if (a.name() == "agent-a") continue;
    EXPECT_TRUE(std::find(a.labels().begin(), a.labels().end(),
                          "musa_arch=" + a.name().substr(6)) != a.labels().end())
        << a.ShortDebugString();
  }
  CliResult r = farm_->Cli({"submit", Pipeline("cells.yaml.in"), "--watch", "--arch", "qy2,ph1",
                            "-m", "qy2=https://dl.example/qy2/musa.tgz,ph1=https://dl.example/ph1/musa.tgz"},
                           absl::Seconds(300));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  absl::StatusOr<v1::Job> job = farm_->Job(JobIdOf(r.out));
  ASSERT_TRUE(job.ok()) << job.status();
  for (const char* arch : {"qy2", "ph1"}) {
    SCOPED_TRACE(arch);
    const v1::Task* t = FindTask(*job, absl::StrCat(arch, "-3.8/release"));
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->state(), v1::TASK_STATE_SUCCEEDED) << t->reason();
    EXPECT_EQ(t->agent(), absl::StrCat("agent-", arch));
    EXPECT_EQ(Recorded(host_, absl::StrCat("musafarm/torch_musa-cells:", arch, "-py3.8"),
                       "musa_toolkits_url", farm_->dir() + "/record.log"),
              absl::StrCat("https://dl.example/", arch, "/musa.tgz"));
  }
}

}  // namespace
}  // namespace musafarm::e2e
