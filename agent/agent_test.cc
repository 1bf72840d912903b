#include "agent/agent.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "common/limits.h"
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
  uint64_t sparse_artifact = 0;  // also collects big.bin, a sparse file of this size
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
          if (script.sparse_artifact > 0) {  // size without disk, as `truncate -s`
            // Beside the work dir, which the agent removes: the test looks at it after.
            const std::string path = workdir + ".big.bin";
            std::ofstream(path, std::ios::binary) << "head";
            fs::resize_file(path, script.sparse_artifact);
            info.files.push_back({"big.bin", path, "/home/big.bin"});
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
  void Run(Script script, uint64_t max_log_bytes = 0) {
    coordinator_ = std::make_unique<testing::FakeCoordinatorLink>();
    v1::Assignment as = Assignment();
    as.set_max_log_bytes(max_log_bytes);
    coordinator_->Assign(as);
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

// Issue 12: the agent learns --max-log-bytes from its assignment and sends the
// first max bytes (after redaction, the offsets the coordinator stores) and
// one marker, and drops the rest itself: counted in the result, never sent.
TEST_F(AgentRedactionTest, OutputPastMaxLogBytesIsDroppedOnTheAgentAfterOneMarker) {
  Script script;
  // 10 MB in 4,000-byte reads, a secret in the first one; the limit 64 KiB.
  std::string chunk = absl::StrCat("pw=", kPassword, "\n");
  chunk.resize(4000, 'x');
  script.chunks.assign(2500, chunk);
  constexpr uint64_t kMax = 64 << 10;
  Run(std::move(script), kMax);

  const std::string redacted_chunk = absl::StrCat("pw=***\n", std::string(4000 - 3 - 14 - 1, 'x'));
  ASSERT_EQ(redacted_chunk.size(), 4000u - 14 + 3);
  const std::string marker =
      absl::StrCat("\n[musafarm] log truncated at ", kMax,
                   " bytes (--max-log-bytes); the agent drops further output\n");
  uint64_t sent = 0;  // bytes of log data that crossed the link
  for (const v1::AgentMessage& m : coordinator_->received()) {
    if (m.has_log()) sent += m.log().data().size();
  }
  EXPECT_EQ(sent, kMax + marker.size());
  const std::string log = Log();
  ASSERT_EQ(log.size(), kMax + marker.size());
  EXPECT_EQ(log.substr(0, redacted_chunk.size()), redacted_chunk);
  EXPECT_EQ(log.substr(kMax), marker);
  const v1::AttemptResult result = Result();
  EXPECT_EQ(result.log_size(), kMax + marker.size());
  EXPECT_EQ(result.log_dropped_bytes(), 2500 * redacted_chunk.size() - kMax);
  ExpectNoSecretSent();
}

// Without a limit (an old coordinator sends none) every byte is sent.
TEST_F(AgentRedactionTest, WithoutAMaxLogBytesEveryByteIsSent) {
  Script script;
  script.chunks.assign(100, std::string(1000, 'y'));
  Run(std::move(script), /*max_log_bytes=*/0);
  EXPECT_EQ(Log(), std::string(100000, 'y'));
  EXPECT_EQ(Result().log_dropped_bytes(), 0u);
}

// An artifact over the coordinator's limit is neither redacted (which would
// rewrite it in full) nor sent; the task's log says so. A sparse file gives
// the size without the disk.
TEST_F(AgentRedactionTest, AnArtifactOverTheLimitIsNotRedactedNorSentAndTheLogSaysSo) {
  Script script;
  script.artifact = "===== 1 passed in 0.10s =====\n";
  script.sparse_artifact = limits::kMaxArtifactBytes + 1;
  Run(std::move(script));
  const v1::AttemptResult result = Result();
  ASSERT_EQ(result.artifacts_size(), 1);
  EXPECT_EQ(result.artifacts(0).name(), "ut_output.txt");  // the small one still goes
  for (const v1::AgentMessage& m : coordinator_->received()) {
    if (m.has_artifact()) {
      EXPECT_EQ(m.artifact().name(), "ut_output.txt");
    }
  }
  EXPECT_THAT(Log(), HasSubstr("musafarm-agent: not sending /home/big.bin: 1073741825 bytes, over "
                               "the artifact limit of 1073741824 bytes (1 GiB)\n"));
  // Left as it was: not rewritten by the redactor (still sparse, its first bytes unchanged).
  int found = 0;
  for (const auto& entry : fs::directory_iterator(dir_ / "tasks")) {
    if (!absl::EndsWith(entry.path().string(), ".big.bin")) continue;
    ++found;
    struct stat st {};
    ASSERT_EQ(::stat(entry.path().c_str(), &st), 0);
    EXPECT_EQ(static_cast<uint64_t>(st.st_size), limits::kMaxArtifactBytes + 1);
    EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, uint64_t{1} << 20) << "rewritten in full";
    std::ifstream in(entry.path(), std::ios::binary);
    std::string head(4, '\0');
    in.read(head.data(), 4);
    EXPECT_EQ(head, "head");
  }
  EXPECT_EQ(found, 1);
}

}  // namespace
}  // namespace musafarm::agent
