#include "agent/agent.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_coordinator_link.h"

namespace musafarm::agent {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPassword[] = "hunter2-s3cret";
constexpr char kUrl[] = "https://u:p@h/repo";

// What an attempt does, scripted: output chunks, a file it brings back, how it ends.
struct Script {
  std::vector<std::string> chunks;
  std::string artifact;  // content of the collected ut_output.txt; none if empty
  std::string exit_error;
  std::string start_error;  // Start() itself fails with this
};

class ScriptedExecution final : public Execution {
 public:
  ScriptedExecution(Script script, std::string workdir, ExecCallbacks cb) {
    thread_ = std::thread(
        [script = std::move(script), workdir = std::move(workdir), cb = std::move(cb)]() mutable {
          for (std::string& c : script.chunks) cb.on_output(std::move(c));
          ExitInfo info;
          info.exit_code = 1;
          info.error = script.exit_error;
          if (!script.artifact.empty()) {
            fs::create_directories(workdir + "/artifacts");
            const std::string path = workdir + "/artifacts/ut_output.txt";
            std::ofstream(path, std::ios::binary) << script.artifact;
            info.files.push_back({"ut_output.txt", path, "/home/ut_output.txt"});
            fs::create_directories(workdir + "/artifacts/reports");  // a directory: no artifact
            info.files.push_back({"reports", workdir + "/artifacts/reports", "/home/reports"});
          }
          cb.on_exit(std::move(info));
        });
  }
  ~ScriptedExecution() override { thread_.join(); }
  void Cancel() override {}

 private:
  std::thread thread_;
};

class ScriptedExecutor final : public Executor {
 public:
  explicit ScriptedExecutor(Script script) : script_(std::move(script)) {}
  absl::StatusOr<std::unique_ptr<Execution>> Start(const v1::Assignment&,
                                                   const std::string& workdir,
                                                   ExecCallbacks callbacks) override {
    if (!script_.start_error.empty()) return absl::InvalidArgumentError(script_.start_error);
    return std::unique_ptr<Execution>(
        std::make_unique<ScriptedExecution>(script_, workdir, std::move(callbacks)));
  }

 private:
  const Script script_;
};

class AgentRedactionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("mf-agent-", ::getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  static v1::Assignment Assignment() {
    v1::Assignment a;
    a.set_task_id("7/dev/test");
    a.set_attempt_id(12);
    a.set_job_id("7");
    a.mutable_run()->mutable_exec()->add_argv("true");
    a.mutable_run()->add_secrets("PASSWORD");
    (*a.mutable_secrets())["PASSWORD"] = kPassword;
    (*a.mutable_secrets())["MUSA_URL"] = kUrl;  // not named by the stage: redacted all the same
    return a;
  }

  // Runs one attempt of `script` on an agent with 2 mthreads GPUs, to its
  // acknowledged result.
  void Run(Script script) {
    coordinator_ = std::make_unique<testing::FakeCoordinatorLink>();
    coordinator_->Assign(Assignment());
    AgentOptions options;
    options.name = "a1";
    options.slots = 1;
    options.work_dir = dir_.string();
    options.gpus.vendor = "mthreads";
    options.gpus.count = 2;
    ScriptedExecutor executor(std::move(script));
    {
      Agent agent(options, coordinator_.get(), &executor);
      ASSERT_TRUE(agent.Start().ok());
      ASSERT_TRUE(coordinator_->WaitFor([](const testing::FakeCoordinatorLink::Messages& ms) {
        for (const v1::AgentMessage& m : ms) {
          if (m.has_result()) return true;
        }
        return false;
      }));
      agent.Stop();
    }
  }

  // Every log chunk in order; fails unless they are contiguous from 0.
  std::string Log() {
    std::string log;
    for (const v1::AgentMessage& m : coordinator_->received()) {
      if (!m.has_log()) continue;
      EXPECT_EQ(m.log().offset(), log.size());
      log += m.log().data();
    }
    return log;
  }
  v1::AttemptResult Result() {
    for (const v1::AgentMessage& m : coordinator_->received()) {
      if (m.has_result()) return m.result();
    }
    return {};
  }
  void ExpectNoSecretSent() {
    for (const v1::AgentMessage& m : coordinator_->received()) {
      const std::string wire = m.SerializeAsString();
      EXPECT_THAT(wire, Not(HasSubstr(kPassword))) << m.DebugString();
      EXPECT_THAT(wire, Not(HasSubstr(kUrl))) << m.DebugString();
    }
  }

  fs::path dir_;
  std::unique_ptr<testing::FakeCoordinatorLink> coordinator_;
};

TEST_F(AgentRedactionTest, OutputArtifactsAndErrorAreRedactedBeforeOffsetsAndSizes) {
  Script script;
  // Secrets split across reads, and a tail that starts like a secret but is
  // not one: held back until the process ends, then sent as it was.
  script.chunks = {"start hun", "ter2-s3cret end\n", "clone https://u:p", "@h/repo\n",
                   "tail hunter2-s3cr"};
  script.artifact = absl::StrCat("FAILED tests/test_a.py::test_clone[", kUrl,
                                 "] - auth failed\n===== 1 failed, 2 passed in 0.10s =====\n");
  script.exit_error = absl::StrCat("could not fetch ", kUrl);
  Run(std::move(script));

  const v1::Register reg = coordinator_->registration();
  EXPECT_EQ(reg.capabilities().gpus(), 2);
  EXPECT_EQ(reg.capabilities().gpu_vendor(), "mthreads");

  const std::string want_log = "start *** end\nclone ***\ntail hunter2-s3cr";
  EXPECT_EQ(Log(), want_log);
  const v1::AttemptResult result = Result();
  EXPECT_EQ(result.log_size(), want_log.size());  // redacted bytes are what is counted
  EXPECT_EQ(result.error(), "could not fetch ***");
  EXPECT_EQ(result.outcome(), v1::ATTEMPT_OUTCOME_ERROR);

  const std::string want_artifact =
      "FAILED tests/test_a.py::test_clone[***] - auth failed\n"
      "===== 1 failed, 2 passed in 0.10s =====\n";
  ASSERT_EQ(result.artifacts_size(), 1);  // the directory is not one
  EXPECT_EQ(result.artifacts(0).name(), "ut_output.txt");
  EXPECT_EQ(result.artifacts(0).size(), want_artifact.size());
  std::string artifact;
  for (const v1::AgentMessage& m : coordinator_->received()) {
    if (m.has_artifact()) {
      EXPECT_EQ(m.artifact().offset(), artifact.size());
      artifact += m.artifact().data();
    }
  }
  EXPECT_EQ(artifact, want_artifact);
  EXPECT_EQ(result.tests().failed(), 1);
  EXPECT_THAT(result.tests().failed_tests(), ElementsAre("tests/test_a.py::test_clone[***]"));
  ExpectNoSecretSent();
}

// Bytes that are not UTF-8 in a test name or an error text would make the
// result unparsable for the coordinator (a proto3 string), at every resend.
TEST_F(AgentRedactionTest, ResultWithNonUtf8TestNamesAndErrorStillParses) {
  Script script;
  script.artifact = "FAILED tests/t.py::test_\xFF - boom\n== 1 failed in 0.1s ==\n";
  script.exit_error = "cannot read /tmp/\xFE\xFF";
  Run(std::move(script));
  const v1::AttemptResult result = Result();
  EXPECT_EQ(result.error(), "cannot read /tmp/\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_THAT(result.tests().failed_tests(), ElementsAre("tests/t.py::test_\xEF\xBF\xBD"));
  v1::AgentMessage sent;
  *sent.mutable_result() = result;
  v1::AgentMessage back;
  EXPECT_TRUE(back.ParseFromString(sent.SerializeAsString()));
}

TEST_F(AgentRedactionTest, StartErrorIsRedacted) {
  Script script;
  script.start_error = absl::StrCat("bad argument near ", kPassword);
  Run(std::move(script));
  EXPECT_EQ(Log(), "musafarm-agent: bad argument near ***\n");
  EXPECT_EQ(Result().error(), "bad argument near ***");
  ExpectNoSecretSent();
}

// Issue 16, item 7: a collected JUnit XML report becomes the counts (redacted
// first, like every collected file), and one that cannot be read is said in
// the task's log.
TEST_F(AgentRedactionTest, CollectedJUnitReportBecomesCounts) {
  Script script;
  script.artifact = absl::StrCat(
      "<?xml version=\"1.0\"?><testsuite><testcase classname=\"tests.t\" name=\"test_",
      kPassword, "\"><failure/></testcase><testcase classname=\"tests.t\" name=\"ok\"/></testsuite>");
  Run(std::move(script));
  const v1::AttemptResult result = Result();
  EXPECT_EQ(result.tests().failed(), 1);
  EXPECT_EQ(result.tests().passed(), 1);
  EXPECT_THAT(result.tests().failed_tests(), ElementsAre("tests.t::test_***"));
  ExpectNoSecretSent();
}

TEST_F(AgentRedactionTest, AnUnreadableJUnitReportIsSaidInTheLog) {
  Script script;
  script.artifact = "<testsuite><testcase name='x'>";
  Run(std::move(script));
  const v1::AttemptResult result = Result();
  EXPECT_FALSE(result.has_tests());
  EXPECT_THAT(Log(), ::testing::HasSubstr(
                         "musafarm-agent: test report ut_output.txt not read: not a JUnit XML report"));
  EXPECT_EQ(result.log_size(), Log().size());
}

}  // namespace
}  // namespace musafarm::agent
