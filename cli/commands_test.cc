// Drives the command functions against a fake UserService on 127.0.0.1:0.
#include "cli/commands/commands.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "cli/app.h"
#include "cli/client.h"
#include "cli/config.h"
#include "cli/fake_user_service.h"
#include "cli/json.h"
#include "cli/results.h"
#include "common/limits.h"
#include "common/subprocess.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"
#include "musafarm/v1/user_service.grpc.pb.h"
#include "pugixml.hpp"
#include "tests/fakes/fake_clock.h"

namespace musafarm::cli {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::Pair;

}  // namespace

using fakes::FakeUserService;
using fakes::FinishedEv;
using fakes::kT0;
using fakes::LogEv;
using fakes::MakeJob;
using fakes::MakeTask;
using fakes::SnapshotEv;
using fakes::TaskEv;
using fakes::WatchScript;

namespace {

class CommandsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = fakes::ServeOnLoopback({&service_, &content_}, &port_);
    // The built-in pipeline's inputs (../dockerfiles) are found beside the
    // repository's pipelines/, as the CLI package installs them.
    setenv("MUSAFARM_PIPELINES_DIR", MF_SOURCE_DIR "/pipelines", 1);
    ASSERT_NE(server_, nullptr);
    ASSERT_NE(port_, 0);
    env_.coordinator = absl::StrCat("127.0.0.1:", port_);
    env_.out = &out_;
    env_.err = &err_;
    env_.tz = absl::UTCTimeZone();
    env_.clock = &clock_;
    watch_.backoff_initial = absl::Milliseconds(10);
    watch_.backoff_max = absl::Milliseconds(20);
  }
  void TearDown() override { server_->Shutdown(); }

  std::string WriteSpec(const std::string& content) {
    const std::string path =
        absl::StrCat(::testing::TempDir(), "/spec_",
                     ::testing::UnitTest::GetInstance()->current_test_info()->name(), ".yaml");
    std::ofstream(path) << content;
    return path;
  }
  std::vector<std::string> OutLines() const {
    std::vector<std::string> lines = absl::StrSplit(out_.str(), '\n');
    if (!lines.empty() && lines.back().empty()) lines.pop_back();
    return lines;
  }

  FakeUserService service_;
  fakes::FakeContentService content_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  testing::FakeClock clock_;
  std::ostringstream out_, err_;
  CommandEnv env_;
  WatchOptions watch_;
};

constexpr char kSpec[] = "name: demo\nstages:\n  - name: build\n    exec: [make]\n";

TEST_F(CommandsTest, SubmitSendsTheFileAndPrintsTheJob) {
  service_.job = MakeJob(v1::JOB_STATE_RUNNING, {MakeTask("7/build", v1::TASK_STATE_QUEUED)});
  SubmitOptions opts;
  opts.file = WriteSpec(kSpec);
  opts.job_name = "renamed";  // --job-name
  EXPECT_EQ(RunSubmit(env_, opts), 0) << err_.str();
  ASSERT_EQ(service_.submits.size(), 1u);
  EXPECT_EQ(service_.submits[0].spec_yaml(), kSpec);
  EXPECT_EQ(service_.submits[0].spec_file(), opts.file);
  EXPECT_EQ(service_.submits[0].name(), "renamed");
  EXPECT_EQ(out_.str(), "submitted job 7 (1 tasks)\n");
  EXPECT_EQ(err_.str(), "");
}

// Nothing to pack, so no ContentService call (issue 19: no round trip a submit
// does not need): the fake content store is never asked.
TEST_F(CommandsTest, SubmitOfGitInputsCallsNothingButSubmit) {
  service_.job = MakeJob(v1::JOB_STATE_RUNNING, {MakeTask("7/build", v1::TASK_STATE_QUEUED)});
  SubmitOptions opts;
  opts.file = WriteSpec(kSpec);
  opts.contexts = {"src=git+https://example.org/src.git#main"};
  EXPECT_EQ(RunSubmit(env_, opts), 0) << err_.str();
  ASSERT_EQ(service_.submits.size(), 1u);
  ASSERT_EQ(service_.submits[0].inputs_size(), 1);
  EXPECT_EQ(service_.submits[0].inputs(0).name(), "src");
  EXPECT_EQ(service_.submits[0].inputs(0).source(), "git+https://example.org/src.git#main");
  EXPECT_EQ(content_.limits_asked(), 0);
  EXPECT_EQ(content_.asked(), 0);
  EXPECT_EQ(err_.str(), "");
}

TEST_F(CommandsTest, SubmitWithoutAFileSendsTheBuiltInTorchMusaPipeline) {
  service_.job = MakeJob(v1::JOB_STATE_RUNNING, {MakeTask("7/build", v1::TASK_STATE_QUEUED)});
  SubmitOptions opts;  // no file: the options are those pipelines/torch_musa.yaml declares
  opts.given.declared = {{"name", {"torch_musa_dev"}},
                         {"python_version", {"3.9"}},
                         {"docker_file", {"docker/ubuntu/dockerfile.dev"}},
                         {"musa_toolkits_url", {"https://dl.example/musa.tar?token=s3cr3t"}},
                         {"torch_musa_tag", {"dev1.6.0"}}};
  EXPECT_EQ(RunSubmit(env_, opts), 0) << err_.str();
  ASSERT_EQ(service_.submits.size(), 1u);
  const v1::SubmitRequest& req = service_.submits[0];
  std::ifstream in(std::string(MF_SOURCE_DIR) + "/pipelines/torch_musa.yaml");
  EXPECT_EQ(req.spec_yaml(), std::string(std::istreambuf_iterator<char>(in), {}));
  EXPECT_EQ(req.spec_file(), "pipelines/torch_musa.yaml (built in)");
  EXPECT_EQ(req.name(), "torch_musa_dev");
  EXPECT_EQ(req.params().at("name"), "torch_musa_dev");
  EXPECT_EQ(req.params().at("dev_dockerfile"), "ubuntu/dockerfile.dev");  // strip_prefix
  EXPECT_EQ(req.params().at("torch_musa_tag"), "dev1.6.0");
  ASSERT_EQ(req.axes_size(), 2);
  EXPECT_EQ(req.axes(0).axis(), "variant");
  EXPECT_EQ(req.axes(1).axis(), "python");
  EXPECT_EQ(req.secrets().at("MUSA_TOOLKITS_URL"), "https://dl.example/musa.tar?token=s3cr3t");
  EXPECT_THAT(out_.str(), Not(HasSubstr("s3cr3t")));
  // Its inputs: the Dockerfiles packed from beside the pipeline (uploaded:
  // the store was asked about their blobs), torch_musa at the tag, the join.
  ASSERT_EQ(req.inputs_size(), 3);
  EXPECT_EQ(req.inputs(0).name(), "dockerfiles");
  EXPECT_EQ(req.inputs(0).source(), "dir:" MF_SOURCE_DIR "/dockerfiles");
  EXPECT_EQ(req.inputs(0).tree().sha256().size(), 64u);
  EXPECT_GT(content_.asked(), 0);
  EXPECT_EQ(req.inputs(1).name(), "torch_musa");
  EXPECT_EQ(req.inputs(1).source(), "git+https://github.com/MooreThreads/torch_musa.git#dev1.6.0");
  EXPECT_EQ(req.inputs(2).source(), "join:.=dockerfiles,torch_musa=torch_musa");
}

// A coordinator without a content store (UNIMPLEMENTED, no message) used to
// get a bare "musafarm: " from a submit that packs a directory.
TEST_F(CommandsTest, SubmitToACoordinatorWithoutAContentStoreSaysWhatIsMissing) {
  int port = 0;
  std::unique_ptr<grpc::Server> no_content = fakes::ServeOnLoopback({&service_}, &port);
  ASSERT_NE(no_content, nullptr);
  env_.coordinator = absl::StrCat("127.0.0.1:", port);
  SubmitOptions opts;  // the built-in pipeline: its `dockerfiles` input is a directory
  opts.given.declared = {{"python_version", {"3.9"}}};
  EXPECT_EQ(RunSubmit(env_, opts), kExitUsage);
  EXPECT_THAT(err_.str(), AllOf(HasSubstr("context dockerfiles: the coordinator at " +
                                          env_.coordinator + " serves no content store"),
                                HasSubstr("=git+URL#REF")));
  EXPECT_TRUE(service_.submits.empty());
  no_content->Shutdown();
}

int Cli(std::vector<const char*> args, CommandEnv env);  // below, with the other CLI tests

TEST_F(CommandsTest, TheReadmesTorchMusaCommandStillWorks) {
  // README.md, "Building torch_musa images", less --watch.
  service_.job = MakeJob(v1::JOB_STATE_RUNNING, {MakeTask("7/build", v1::TASK_STATE_QUEUED)});
  const std::string addr = env_.coordinator;
  EXPECT_EQ(Cli({"submit",
                 "-n",
                 "torch_musa",
                 "-t",
                 "nightly",
                 "-v",
                 "3.8,3.9,3.10",
                 "--variant",
                 "dev,release",
                 "-m",
                 "https://dl/musa?t=1",
                 "--mudnn_url",
                 "https://dl/mudnn",
                 "--mccl_url",
                 "https://dl/mccl",
                 "--torch_whl_url",
                 "https://dl/torch.whl",
                 "--torch_musa_whl_url",
                 "https://dl/tm.whl",
                 "--torch_musa_tag",
                 "dev1.5.1",
                 "--param",
                 "registry=harbor.example.com/mt-ai/",
                 "--param",
                 "push=true",
                 "-c",
                 addr.c_str()},
                env_),
            0)
      << err_.str();
  ASSERT_EQ(service_.submits.size(), 1u);
  const v1::SubmitRequest& req = service_.submits[0];
  EXPECT_EQ(req.name(), "torch_musa");
  EXPECT_EQ(req.spec_file(), "pipelines/torch_musa.yaml (built in)");
  const std::map<std::string, std::string> params(req.params().begin(), req.params().end());
  EXPECT_THAT(params, ::testing::UnorderedElementsAre(
                          ::testing::Pair("name", "torch_musa"), ::testing::Pair("tag", "nightly"),
                          ::testing::Pair("torch_musa_tag", "dev1.5.1"),
                          ::testing::Pair("registry", "harbor.example.com/mt-ai/"),
                          ::testing::Pair("push", "true")));
  ASSERT_EQ(req.axes_size(), 2);
  EXPECT_EQ(req.axes(0).axis(), "variant");
  EXPECT_THAT(req.axes(0).values(), ::testing::ElementsAre("dev", "release"));
  EXPECT_EQ(req.axes(1).axis(), "python");
  EXPECT_THAT(req.axes(1).values(), ::testing::ElementsAre("3.8", "3.9", "3.10"));
  EXPECT_EQ(req.secrets_size(), 5);
  EXPECT_EQ(req.secrets().at("MUSA_TOOLKITS_URL"), "https://dl/musa?t=1");
  EXPECT_EQ(req.secrets().at("TORCH_MUSA_WHL_URL"), "https://dl/tm.whl");
}

TEST_F(CommandsTest, SubmitNamesTheOptionAPipelineDoesNotTake) {
  // A pipeline declares its options: kSpec declares none, so torch_musa's -t
  // and -m are unknown here, and the error names them but not their values.
  const std::string file = WriteSpec(kSpec);
  EXPECT_EQ(Cli({"submit", file.c_str(), "-t", "nightly", "-m", "https://dl.example/?token=s3cr3t"},
                env_),
            2);
  EXPECT_TRUE(service_.submits.empty());
  EXPECT_THAT(err_.str(), HasSubstr("unknown options -t, -m"));
  EXPECT_THAT(err_.str(), Not(HasSubstr("s3cr3t")));
  // --job-name names the job of any pipeline.
  err_.str("");
  service_.job = MakeJob(v1::JOB_STATE_RUNNING, {MakeTask("7/build", v1::TASK_STATE_QUEUED)});
  SubmitOptions named;
  named.file = WriteSpec(kSpec);
  named.job_name = "mine";
  EXPECT_EQ(RunSubmit(env_, named), 0) << err_.str();
  ASSERT_EQ(service_.submits.size(), 1u);
  EXPECT_EQ(service_.submits[0].name(), "mine");
  EXPECT_TRUE(service_.submits[0].params().empty());
}

TEST_F(CommandsTest, SubmitAxisValueErrorNamesTheOptionTyped) {
  SubmitOptions opts;  // the built-in pipeline
  opts.given.declared = {{"python_version", {"3.8/x"}}};
  EXPECT_EQ(RunSubmit(env_, opts), 2);
  EXPECT_TRUE(service_.submits.empty());
  EXPECT_THAT(err_.str(), HasSubstr("pipelines/torch_musa.yaml (built in): -v/--python_version "
                                    "(axis python): value '3.8/x' may hold only"));
}

TEST_F(CommandsTest, SubmitJsonPrintsTheJob) {
  service_.job = MakeJob(v1::JOB_STATE_RUNNING, {MakeTask("7/build", v1::TASK_STATE_QUEUED)});
  env_.output = OutputFormat::kJson;
  SubmitOptions opts;
  opts.file = WriteSpec(kSpec);
  EXPECT_EQ(RunSubmit(env_, opts), 0) << err_.str();
  EXPECT_THAT(out_.str(),
              AllOf(HasSubstr("\"id\":\"7\""), HasSubstr("\"state\":\"JOB_STATE_RUNNING\"")));
}

TEST_F(CommandsTest, SubmitRejectsABadSpecWithoutContactingTheServer) {
  SubmitOptions opts;
  opts.file = WriteSpec("name: demo\nstages:\n  - name: build\n    exce: [make]\n");
  EXPECT_EQ(RunSubmit(env_, opts), 2);
  EXPECT_TRUE(service_.submits.empty());
  // The spec error verbatim: FILE:LINE:COL: FIELD: message.
  EXPECT_TRUE(absl::StartsWith(err_.str(), opts.file + ":4:")) << err_.str();
  EXPECT_EQ(out_.str(), "");
}

TEST_F(CommandsTest, SubmitOfAMissingFileIsUsageError) {
  SubmitOptions opts;
  opts.file = ::testing::TempDir() + "/does-not-exist.yaml";
  EXPECT_EQ(RunSubmit(env_, opts), 2);
  EXPECT_THAT(err_.str(), HasSubstr("cannot read " + opts.file));
  EXPECT_TRUE(service_.submits.empty());
}

// ReadPipeline reads in pieces as the data arrives (no buffer of the limit's
// size, issue 19): a file of exactly the limit, many pieces long, comes back
// whole; a pipe (no size to stat) that goes one byte past it is refused.
TEST(ReadPipelineTest, ReadsAFileOfTheLimitWholeAndRefusesAPipePastIt) {
  const std::string file = absl::StrCat(::testing::TempDir(), "/read_pipeline_", getpid(), ".yaml");
  std::string text = "name: big\n#";
  text.resize(limits::kMaxSpecBytes, 'x');
  { std::ofstream(file, std::ios::binary) << text; }
  absl::StatusOr<PipelineSource> read = ReadPipeline(file);
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->yaml, text);
  EXPECT_EQ(read->file, file);
  std::filesystem::remove(file);

  const std::string fifo = file + ".fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::thread writer([&] {
    std::ofstream out(fifo, std::ios::binary);
    out << text << "x";
  });
  absl::StatusOr<PipelineSource> piped = ReadPipeline(fifo);
  writer.join();
  std::filesystem::remove(fifo);
  ASSERT_FALSE(piped.ok());
  EXPECT_THAT(std::string(piped.status().message()),
              HasSubstr(absl::StrCat("is more than ", limits::kMaxSpecBytes, " bytes")));
}

TEST_F(CommandsTest, SubmitServerSpecErrorIsUsageError) {
  service_.submit_error = {grpc::StatusCode::INVALID_ARGUMENT, "f.yaml:1:1: stages: bad"};
  SubmitOptions opts;
  opts.file = WriteSpec(kSpec);
  EXPECT_EQ(RunSubmit(env_, opts), 2);
  EXPECT_EQ(err_.str(), "f.yaml:1:1: stages: bad\n");
}

// The job of the watch tests: a builds and succeeds, b fails.
WatchScript FailingJobScript() {
  WatchScript s;
  s.events.push_back(
      SnapshotEv(MakeJob(v1::JOB_STATE_RUNNING, {MakeTask("7/dev/a", v1::TASK_STATE_QUEUED),
                                                 MakeTask("7/dev/b", v1::TASK_STATE_PENDING)})));
  s.events.push_back(TaskEv(MakeTask("7/dev/a", v1::TASK_STATE_RUNNING, 1, "h1")));
  s.events.push_back(LogEv("7/dev/a", 1, 0, "hello\nwor"));
  s.events.push_back(LogEv("7/dev/a", 1, 9, "ld\nno newline"));
  v1::Task a_done = MakeTask("7/dev/a", v1::TASK_STATE_SUCCEEDED, 1, "h1");
  a_done.set_started_us(kT0 - 20'000'000);
  a_done.set_ended_us(kT0 - 10'000'000);
  s.events.push_back(TaskEv(a_done));
  v1::Task b_failed = MakeTask("7/dev/b", v1::TASK_STATE_FAILED, 2, "h2");
  b_failed.set_reason("exit code 2");
  b_failed.set_exit_code(2);
  b_failed.set_started_us(kT0 - 10'000'000);
  b_failed.set_ended_us(kT0 - 5'000'000);
  b_failed.mutable_tests()->set_passed(10);
  b_failed.mutable_tests()->set_failed(2);
  s.events.push_back(TaskEv(b_failed));
  s.events.push_back(FinishedEv(MakeJob(v1::JOB_STATE_FAILED, {a_done, b_failed})));
  return s;
}

TEST_F(CommandsTest, WatchPrintsTransitionsAndLogsAndFailsForAFailedJob) {
  service_.scripts.push_back(FailingJobScript());
  watch_.job_id = "7";
  watch_.logs = true;
  EXPECT_EQ(RunWatch(env_, watch_), 1) << err_.str();
  EXPECT_THAT(
      OutLines(),
      ElementsAre("22:13:20 dev/a queued",         //
                  "22:13:20 dev/b pending",        //
                  "22:13:20 dev/a running on h1",  //
                  "[dev/a] hello",                 //
                  "[dev/a] world",                 //
                  "22:13:20 dev/a succeeded on h1", "22:13:20 dev/b failed on h2 (exit code 2)",
                  "[dev/a] no newline",  //
                  "",                    //
                  "TASK   STATE      AGENT  DURATION  EXIT  TESTS",
                  "dev/a  succeeded  h1     10s       0     -",
                  "dev/b  failed     h2     5.0s      2     10 passed, 2 failed",  //
                  "job 7 failed in 30s"));
  ASSERT_EQ(service_.watches.size(), 1u);
  EXPECT_EQ(service_.watches[0].job_id(), "7");
  EXPECT_TRUE(service_.watches[0].logs());
  EXPECT_EQ(err_.str(), "");
}

TEST_F(CommandsTest, WatchSucceededJobExitsZero) {
  v1::Task done = MakeTask("7/a", v1::TASK_STATE_SUCCEEDED, 1, "h1");
  WatchScript s;
  s.events = {SnapshotEv(MakeJob(v1::JOB_STATE_SUCCEEDED, {done})),
              FinishedEv(MakeJob(v1::JOB_STATE_SUCCEEDED, {done}))};
  service_.scripts.push_back(s);
  watch_.job_id = "7";
  EXPECT_EQ(RunWatch(env_, watch_), 0) << err_.str();
  EXPECT_EQ(OutLines().back(), "job 7 succeeded in 30s");
}

TEST_F(CommandsTest, WatchJsonPrintsOneEventALine) {
  service_.scripts.push_back(FailingJobScript());
  env_.output = OutputFormat::kJson;
  watch_.job_id = "7";
  EXPECT_EQ(RunWatch(env_, watch_), 1);
  std::vector<std::string> lines = OutLines();
  ASSERT_EQ(lines.size(), FailingJobScript().events.size());
  EXPECT_TRUE(absl::StartsWith(lines.front(), "{\"snapshot\":")) << lines.front();
  EXPECT_TRUE(absl::StartsWith(lines.back(), "{\"finished\":")) << lines.back();
}

TEST_F(CommandsTest, WatchResumesAfterUnavailableWithoutPrintingTwice) {
  const v1::Task running = MakeTask("7/a", v1::TASK_STATE_RUNNING, 1, "h1");
  WatchScript first;
  first.events = {SnapshotEv(MakeJob(v1::JOB_STATE_RUNNING, {running})),
                  LogEv("7/a", 1, 0, "one\ntw")};
  first.end = {grpc::StatusCode::UNAVAILABLE, "coordinator restarting"};
  WatchScript second;
  // The server resends from a little before the resume point.
  const v1::Task done = MakeTask("7/a", v1::TASK_STATE_SUCCEEDED, 1, "h1");
  second.events = {SnapshotEv(MakeJob(v1::JOB_STATE_RUNNING, {running})),
                   LogEv("7/a", 1, 4, "two\nthree\n"), TaskEv(done),
                   FinishedEv(MakeJob(v1::JOB_STATE_SUCCEEDED, {done}))};
  service_.scripts = {first, second};
  watch_.job_id = "7";
  watch_.logs = true;
  EXPECT_EQ(RunWatch(env_, watch_), 0) << err_.str();
  ASSERT_EQ(service_.watches.size(), 2u);
  EXPECT_THAT(service_.watches[0].log_offsets(), IsEmpty());
  EXPECT_THAT(service_.watches[1].log_offsets(), ElementsAre(Pair("7/a", 6u)));
  EXPECT_THAT(
      OutLines(),
      ElementsAre("22:13:20 a running on h1", "[a] one", "[a] two", "[a] three",
                  "22:13:20 a succeeded on h1", "", "TASK  STATE      AGENT  DURATION  EXIT  TESTS",
                  "a     succeeded  h1     -         0     -", "job 7 succeeded in 30s"));
  EXPECT_THAT(err_.str(), AllOf(HasSubstr("coordinator restarting"), HasSubstr("reconnected")));
}

TEST_F(CommandsTest, WatchResumesWhenAServerGoingDownCancelsTheCall) {
  const v1::Task done = MakeTask("7/a", v1::TASK_STATE_SUCCEEDED, 1, "h1");
  WatchScript first;
  first.events = {
      SnapshotEv(MakeJob(v1::JOB_STATE_RUNNING, {MakeTask("7/a", v1::TASK_STATE_QUEUED)}))};
  first.end = {grpc::StatusCode::CANCELLED, ""};
  WatchScript second;
  second.events = {SnapshotEv(MakeJob(v1::JOB_STATE_SUCCEEDED, {done})),
                   FinishedEv(MakeJob(v1::JOB_STATE_SUCCEEDED, {done}))};
  service_.scripts = {first, second};
  watch_.job_id = "7";
  EXPECT_EQ(RunWatch(env_, watch_), 0) << err_.str();
  EXPECT_EQ(service_.watches.size(), 2u);
  EXPECT_THAT(OutLines(),
              ElementsAre("22:13:20 a queued", "22:13:20 a succeeded on h1", "",
                          "TASK  STATE      AGENT  DURATION  EXIT  TESTS",
                          "a     succeeded  h1     -         0     -", "job 7 succeeded in 30s"));
}

TEST_F(CommandsTest, WatchGivesUpWhenTheCoordinatorStaysAway) {
  WatchScript first;
  first.events = {
      SnapshotEv(MakeJob(v1::JOB_STATE_RUNNING, {MakeTask("7/a", v1::TASK_STATE_QUEUED)}))};
  first.end = {grpc::StatusCode::UNAVAILABLE, "going away"};
  service_.scripts = {first};  // later calls: UNAVAILABLE
  env_.clock = RealClock::Get();
  watch_.job_id = "7";
  watch_.give_up_after = absl::Milliseconds(200);
  EXPECT_EQ(RunWatch(env_, watch_), 3);
  EXPECT_GE(service_.watches.size(), 2u);  // it did try again
  EXPECT_THAT(err_.str(), HasSubstr("cannot reach coordinator at " + env_.coordinator));
}

TEST_F(CommandsTest, WatchOfUnknownJobIsUsageError) {
  WatchScript s;
  s.end = {grpc::StatusCode::NOT_FOUND, "no job 9"};
  service_.scripts.push_back(s);
  watch_.job_id = "9";
  EXPECT_EQ(RunWatch(env_, watch_), 2);
  EXPECT_EQ(err_.str(), "musafarm: no job 9\n");
  EXPECT_EQ(service_.watches.size(), 1u);
}

TEST_F(CommandsTest, WatchOnATerminalRedrawsInPlace) {
  service_.scripts.push_back(FailingJobScript());
  env_.tty = true;
  watch_.job_id = "7";
  watch_.logs = true;
  EXPECT_EQ(RunWatch(env_, watch_), 1) << err_.str();
  const std::string out = out_.str();
  EXPECT_THAT(out, AllOf(HasSubstr("\x1b[J"), HasSubstr("A\r\x1b[J"), HasSubstr("[dev/a] hello\n"),
                         HasSubstr("[dev/a] no newline\n"), HasSubstr("job 7 failed in 30s\n")));
  // Task changes are in the live table, not printed as lines.
  EXPECT_THAT(out, Not(HasSubstr("dev/a running on h1")));
  EXPECT_EQ(err_.str(), "");
}

TEST_F(CommandsTest, SubmitWatchContinuesAsWatch) {
  service_.job = MakeJob(v1::JOB_STATE_RUNNING, {MakeTask("7/dev/a", v1::TASK_STATE_QUEUED)});
  service_.scripts.push_back(FailingJobScript());
  SubmitOptions opts;
  opts.file = WriteSpec(kSpec);
  opts.watch = true;
  opts.watch_options = watch_;
  EXPECT_EQ(RunSubmit(env_, opts), 1) << err_.str();
  EXPECT_EQ(OutLines().front(), "submitted job 7 (1 tasks)");
  EXPECT_EQ(OutLines().back(), "job 7 failed in 30s");
  ASSERT_EQ(service_.watches.size(), 1u);
  EXPECT_EQ(service_.watches[0].job_id(), "7");
  EXPECT_FALSE(service_.watches[0].logs());
}

// submit --watch -o json asks for the watch before printing the job (the
// print overlaps the watch's round trip, issue 19); what it prints, and in
// which order, stays: the job, then the events.
TEST_F(CommandsTest, SubmitWatchJsonPrintsTheJobOnceAndThenTheEvents) {
  service_.job = MakeJob(v1::JOB_STATE_RUNNING, {MakeTask("7/dev/a", v1::TASK_STATE_QUEUED)});
  service_.scripts.push_back(FailingJobScript());
  env_.output = OutputFormat::kJson;
  SubmitOptions opts;
  opts.file = WriteSpec(kSpec);
  opts.watch = true;
  opts.watch_options = watch_;
  EXPECT_EQ(RunSubmit(env_, opts), 1) << err_.str();
  std::vector<std::string> lines = OutLines();
  ASSERT_EQ(lines.size(), 1 + FailingJobScript().events.size());
  EXPECT_TRUE(absl::StartsWith(lines[0], "{\"id\":\"7\"")) << lines[0];
  EXPECT_TRUE(absl::StartsWith(lines[1], "{\"snapshot\":")) << lines[1];
  EXPECT_TRUE(absl::StartsWith(lines.back(), "{\"finished\":")) << lines.back();
  ASSERT_EQ(service_.watches.size(), 1u);
}

// on_request_sent runs once, before any event is handled, also when the
// watch is resumed on a new stream.
TEST_F(CommandsTest, WatchCallsOnRequestSentOnceBeforeTheFirstEvent) {
  const v1::Task running = MakeTask("7/a", v1::TASK_STATE_RUNNING, 1, "h1");
  const v1::Task done = MakeTask("7/a", v1::TASK_STATE_SUCCEEDED, 1, "h1");
  WatchScript first;
  first.events = {SnapshotEv(MakeJob(v1::JOB_STATE_RUNNING, {running}))};
  first.end = {grpc::StatusCode::UNAVAILABLE, "coordinator restarting"};
  WatchScript second;
  second.events = {SnapshotEv(MakeJob(v1::JOB_STATE_RUNNING, {running})), TaskEv(done),
                   FinishedEv(MakeJob(v1::JOB_STATE_SUCCEEDED, {done}))};
  service_.scripts = {first, second};
  watch_.job_id = "7";
  int calls = 0;
  std::string printed_before;
  watch_.on_request_sent = [&] {
    ++calls;
    printed_before = out_.str();
    *env_.out << "job\n";
  };
  EXPECT_EQ(RunWatch(env_, watch_), 0) << err_.str();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(printed_before, "");
  ASSERT_EQ(service_.watches.size(), 2u);
  EXPECT_EQ(OutLines().front(), "job");
  EXPECT_EQ(OutLines().back(), "job 7 succeeded in 30s");
}

TEST_F(CommandsTest, StatusOfATaskShowsThatTask) {
  v1::Task a = MakeTask("7/dev-3.8/base", v1::TASK_STATE_SUCCEEDED, 1, "h1");
  a.set_attempts(1);
  v1::Task b = MakeTask("7/dev-3.8/test", v1::TASK_STATE_SKIPPED);
  b.set_reason("dependency failed");
  service_.job = MakeJob(v1::JOB_STATE_FAILED, {a, b});
  EXPECT_EQ(RunStatus(env_, "7/dev-3.8/test"), 1);
  EXPECT_THAT(service_.get_jobs, ElementsAre("7"));
  EXPECT_THAT(
      OutLines(),
      ElementsAre(
          "job 7 (demo) failed in 30s", "",
          "TASK          STATE    AGENT  ATTEMPT  EXIT  DURATION  TESTS  REASON",
          "dev-3.8/test  skipped  -      -        -     -         -      dependency failed"));
}

TEST_F(CommandsTest, StatusOfARunningJobExitsZero) {
  service_.job = MakeJob(v1::JOB_STATE_RUNNING, {MakeTask("7/a", v1::TASK_STATE_RUNNING, 1, "h1")});
  EXPECT_EQ(RunStatus(env_, "7"), 0);
  EXPECT_EQ(OutLines().size(), 4u);
  EXPECT_EQ(OutLines()[0], "job 7 (demo) running for 30s");
}

TEST_F(CommandsTest, StatusOfUnknownJobOrTaskIsUsageError) {
  service_.job = MakeJob(v1::JOB_STATE_RUNNING, {});
  EXPECT_EQ(RunStatus(env_, "9"), 2);
  EXPECT_EQ(err_.str(), "musafarm: no job 9\n");
  err_.str("");
  EXPECT_EQ(RunStatus(env_, "7/nope"), 2);
  EXPECT_THAT(err_.str(), HasSubstr("no task 7/nope"));
}

TEST_F(CommandsTest, UnreachableCoordinatorExitsThree) {
  env_.coordinator = "127.0.0.1:1";
  EXPECT_EQ(RunJobs(env_, JobsOptions()), 3);
  EXPECT_THAT(err_.str(), HasSubstr("musafarm: cannot reach coordinator at 127.0.0.1:1: "));
  err_.str("");
  watch_.job_id = "7";
  EXPECT_EQ(RunWatch(env_, watch_), 3);
  EXPECT_THAT(err_.str(), HasSubstr("cannot reach coordinator at 127.0.0.1:1"));
  // On a terminal, no table of a job never seen.
  err_.str("");
  out_.str("");
  env_.tty = true;
  EXPECT_EQ(RunWatch(env_, watch_), 3);
  EXPECT_THAT(err_.str(), HasSubstr("cannot reach coordinator at 127.0.0.1:1"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("job")));
}

TEST_F(CommandsTest, JobsTableAndJson) {
  service_.job = MakeJob(v1::JOB_STATE_SUCCEEDED, {});
  JobsOptions five;
  five.limit = 5;
  EXPECT_EQ(RunJobs(env_, five), 0);
  EXPECT_EQ(service_.list_request.limit(), 5);
  EXPECT_THAT(OutLines(), ElementsAre("ID  NAME  STATE      CREATED              DURATION",
                                      "7   demo  succeeded  2023-11-14 22:12:50  30s"));
  out_.str("");
  env_.output = OutputFormat::kJson;
  EXPECT_EQ(RunJobs(env_, JobsOptions()), 0);
  EXPECT_THAT(out_.str(), HasSubstr("\"jobs\":[{\"id\":\"7\""));
}

TEST_F(CommandsTest, JobsFiltersAreSentToTheCoordinator) {
  service_.job = MakeJob(v1::JOB_STATE_FAILED, {});
  const std::string addr = env_.coordinator;
  EXPECT_EQ(Cli({"jobs", "-c", addr.c_str(), "--state", "failed,cancelled", "--state", "Running",
                 "--name", "night", "--user", "ann", "--since", "1d", "--older-than", "2h"},
                env_),
            0)
      << err_.str();
  const v1::ListJobsRequest& req = service_.list_request;
  EXPECT_THAT(req.states(), ElementsAre(v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED,
                                        v1::JOB_STATE_RUNNING));
  EXPECT_EQ(req.name_contains(), "night");
  EXPECT_EQ(req.user(), "ann");
  EXPECT_EQ(req.created_after_us(), kT0 - 86'400'000'000);  // FakeClock's now less a day
  EXPECT_EQ(req.created_before_us(), kT0 - 7'200'000'000);

  for (std::vector<const char*> bad : {std::vector<const char*>{"--state", "done"},
                                       {"--since", "yesterday"},
                                       {"--older-than", "0s"}}) {
    err_.str("");
    std::vector<const char*> args = {"jobs", "-c", addr.c_str()};
    args.insert(args.end(), bad.begin(), bad.end());
    EXPECT_EQ(Cli(args, env_), 2) << bad[1];
    EXPECT_THAT(err_.str(), HasSubstr(absl::StrCat("musafarm: jobs: ", bad[0], " ", bad[1])));
  }
}

TEST_F(CommandsTest, LogsPagesThroughGetLog) {
  service_.log = "line one\nline two\n";
  service_.log_complete = true;
  EXPECT_EQ(RunLogs(env_, "7/a", /*follow=*/false), 0) << err_.str();
  EXPECT_EQ(out_.str(), "line one\nline two\n");
  EXPECT_EQ(service_.get_logs.size(), 5u);  // 18 bytes, 4 a call
  EXPECT_EQ(service_.get_logs[1].offset(), 4u);
  EXPECT_TRUE(service_.watches.empty());
}

// "0123456" stored, then a watch whose log event overlaps what GetLog gave.
WatchScript FollowLogScript(FakeUserService* service) {
  service->log = "0123456";
  const v1::Task running = MakeTask("7/a", v1::TASK_STATE_RUNNING, 1, "h1");
  const v1::Task done = MakeTask("7/a", v1::TASK_STATE_SUCCEEDED, 1, "h1");
  WatchScript s;
  s.events = {SnapshotEv(MakeJob(v1::JOB_STATE_RUNNING, {running})),
              LogEv("7/a", 1, 5, "56789"),  // overlaps what GetLog gave
              TaskEv(done), FinishedEv(MakeJob(v1::JOB_STATE_SUCCEEDED, {done}))};
  return s;
}

TEST_F(CommandsTest, LogsFollowContinuesWithWatchFromTheOffset) {
  service_.scripts.push_back(FollowLogScript(&service_));
  EXPECT_EQ(RunLogs(env_, "7/a", /*follow=*/true, watch_), 0) << err_.str();
  EXPECT_EQ(out_.str(), "0123456789");
  ASSERT_EQ(service_.watches.size(), 1u);
  EXPECT_EQ(service_.watches[0].job_id(), "7");
  EXPECT_EQ(service_.watches[0].task_id(), "7/a");
  EXPECT_TRUE(service_.watches[0].logs());
  EXPECT_THAT(service_.watches[0].log_offsets(), ElementsAre(Pair("7/a", 7u)));
}

TEST_F(CommandsTest, LogsNeedsATaskId) {
  EXPECT_EQ(RunLogs(env_, "7", false), 2);
  EXPECT_THAT(err_.str(), HasSubstr("not a task id"));
}

TEST_F(CommandsTest, CancelAgentsDrain) {
  EXPECT_EQ(RunCancel(env_, "7"), 0);
  EXPECT_EQ(service_.cancelled_id, "7");
  EXPECT_EQ(out_.str(), "cancelled 2 task(s)\n");
  out_.str("");
  EXPECT_EQ(RunAgents(env_), 0);
  EXPECT_THAT(OutLines(), ElementsAre("NAME   STATE      SLOTS  LABELS     RUNNING  LAST SEEN",
                                      "gpu-1  connected  1/2    gpu=s4000  7/a      2s ago"));
  out_.str("");
  EXPECT_EQ(RunDrain(env_, "gpu-1", false), 0);
  EXPECT_EQ(RunDrain(env_, "gpu-1", true), 0);
  EXPECT_EQ(out_.str(), "agent gpu-1 is draining\nagent gpu-1 is connected\n");
  EXPECT_EQ(RunDrain(env_, "nope", false), 2);
}

// Issue 20: the fake lists an active, a standby and one gone.
TEST_F(CommandsTest, CoordinatorsShowsWhoIsActiveSinceWhen) {
  EXPECT_EQ(RunCoordinators(env_), 0) << err_.str();
  EXPECT_THAT(
      OutLines(),
      ElementsAre(
          "ADDRESS       ROLE     EPOCH  ACTIVE SINCE                     LAST SEEN   ID",
          "coord-a:7070  active   3      2023-11-14 21:13:20 (1h00m ago)  1s ago      a/1/1",
          "coord-b:7070  standby  -      -                                2s ago      b/2/1",
          "coord-c:7070  gone     -      -                                10m00s ago  c/3/1"));
}

TEST_F(CommandsTest, AgentsRevoke) {
  EXPECT_EQ(RunRevoke(env_, "gpu-1"), 0);
  EXPECT_EQ(out_.str(),
            "agent gpu-1 is revoked: its stream (if any) was ended and it is refused at every "
            "connect, renewal and enrolment (1 certificate issued by this farm)\n");
  EXPECT_EQ(RunRevoke(env_, "nope"), 2);
  EXPECT_THAT(err_.str(), HasSubstr("no agent named 'nope' has connected or enrolled"));
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The files in `dir`, sorted.
std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// A fresh, empty directory for this test; with `sub`, a path under it.
std::string TestDir(const std::string& sub = "") {
  const std::string dir =
      absl::StrCat(::testing::TempDir(), "/cli_",
                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return sub.empty() ? dir : dir + "/" + sub;
}

v1::Artifact MakeArtifact(const std::string& name, uint64_t size, const std::string& source) {
  v1::Artifact a;
  a.set_name(name);
  a.set_size(size);
  a.set_source(source);
  return a;
}

// Bytes that no off-by-one in paging reproduces: pseudo-random, NULs included.
std::string RandomBytes(size_t n) {
  std::mt19937 gen(42);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(gen() & 0xff);
  return s;
}

class ArtifactsTest : public CommandsTest {
 protected:
  // Task 7/dev/test has three artifacts: one of two pages and a bit, a small
  // one and an empty one.
  void SetUp() override {
    CommandsTest::SetUp();
    big_ = RandomBytes(2 * FakeUserService::kMaxArtifactPage + 12345);
    v1::Task t = MakeTask("7/dev/test", v1::TASK_STATE_SUCCEEDED, 1, "h1");
    *t.add_artifacts() = MakeArtifact("ut_output.txt", big_.size(), "/home/ut_output.txt");
    *t.add_artifacts() = MakeArtifact("junit.xml", 6, "/home/junit.xml");
    *t.add_artifacts() = MakeArtifact("empty.log", 0, "/home/empty.log");
    service_.job =
        MakeJob(v1::JOB_STATE_SUCCEEDED, {MakeTask("7/dev/base", v1::TASK_STATE_SUCCEEDED), t});
    service_.artifacts["7/dev/test\nut_output.txt"] = big_;
    service_.artifacts["7/dev/test\njunit.xml"] = "<x/>\n\n";
    service_.artifacts["7/dev/test\nempty.log"] = "";
  }
  std::string big_;
};

TEST_F(ArtifactsTest, ListsTheTasksArtifacts) {
  EXPECT_EQ(RunArtifacts(env_, "7/dev/test", ""), 0) << err_.str();
  EXPECT_THAT(OutLines(), ElementsAre("NAME           SIZE   SOURCE",
                                      "ut_output.txt  8 MiB  /home/ut_output.txt",
                                      "junit.xml      6 B    /home/junit.xml",
                                      "empty.log      0 B    /home/empty.log"));
  EXPECT_TRUE(service_.get_artifacts.empty());
  out_.str("");
  env_.output = OutputFormat::kJson;
  EXPECT_EQ(RunArtifacts(env_, "7/dev/test", ""), 0) << err_.str();
  EXPECT_EQ(
      out_.str(),
      absl::StrCat(
          R"({"artifacts":[{"name":"ut_output.txt","source":"/home/ut_output.txt","size":")",
          big_.size(), R"("},)", R"({"name":"junit.xml","source":"/home/junit.xml","size":"6"},)",
          R"({"name":"empty.log","source":"/home/empty.log","size":"0"}]})", "\n"));
}

TEST_F(ArtifactsTest, DownloadsEveryArtifactByteForBytePageByPage) {
  const std::string dir = TestDir("out/nested");  // created by the command
  EXPECT_EQ(RunArtifacts(env_, "7/dev/test", dir), 0) << err_.str();
  EXPECT_THAT(OutLines(), ElementsAre(absl::StrCat(dir, "/ut_output.txt (", big_.size(), " bytes)"),
                                      dir + "/junit.xml (6 bytes)", dir + "/empty.log (0 bytes)"));
  EXPECT_EQ(err_.str(), "");
  EXPECT_THAT(ListDir(dir), ElementsAre("empty.log", "junit.xml", "ut_output.txt"));  // no .part
  const std::string got = ReadFile(dir + "/ut_output.txt");
  EXPECT_EQ(got.size(), big_.size());
  EXPECT_TRUE(got == big_) << "ut_output.txt differs";
  EXPECT_EQ(ReadFile(dir + "/junit.xml"), "<x/>\n\n");
  EXPECT_EQ(ReadFile(dir + "/empty.log"), "");
  // Three pages of the big file, one call each for the others.
  std::vector<std::pair<std::string, uint64_t>> calls;
  for (const v1::GetArtifactRequest& r : service_.get_artifacts) {
    EXPECT_EQ(r.task_id(), "7/dev/test");
    calls.emplace_back(r.name(), r.offset());
  }
  constexpr uint64_t kPage = FakeUserService::kMaxArtifactPage;
  EXPECT_THAT(calls, ElementsAre(Pair("ut_output.txt", 0u), Pair("ut_output.txt", kPage),
                                 Pair("ut_output.txt", 2 * kPage), Pair("junit.xml", 0u),
                                 Pair("empty.log", 0u)));
}

TEST_F(ArtifactsTest, DownloadReplacesAnOlderFileAndJsonNamesThePaths) {
  const std::string dir = TestDir();
  std::ofstream(dir + "/junit.xml") << "stale content, longer than the new one";
  env_.output = OutputFormat::kJson;
  EXPECT_EQ(RunArtifacts(env_, "7/dev/test", dir + "/"), 0) << err_.str();
  EXPECT_EQ(ReadFile(dir + "/junit.xml"), "<x/>\n\n");
  ASSERT_EQ(OutLines().size(), 3u);
  EXPECT_EQ(OutLines()[1],
            absl::StrCat(R"({"name":"junit.xml","source":"/home/junit.xml","size":"6","path":")",
                         dir, R"(/junit.xml"})"));
}

TEST_F(ArtifactsTest, AFailedDownloadLeavesNoFileBehind) {
  const std::string dir = TestDir();
  service_.artifact_fail_at = FakeUserService::kMaxArtifactPage;  // the big file's second page
  EXPECT_EQ(RunArtifacts(env_, "7/dev/test", dir), 1);
  EXPECT_EQ(err_.str(), "musafarm: disk on fire\n");
  EXPECT_EQ(out_.str(), "");
  EXPECT_THAT(ListDir(dir), IsEmpty());
}

TEST_F(ArtifactsTest, AnArtifactShorterThanItsSizeIsAnErrorNotALoop) {
  const std::string dir = TestDir();
  service_.artifact_size_lie = 3;
  EXPECT_EQ(RunArtifacts(env_, "7/dev/test", dir), 1);
  EXPECT_EQ(err_.str(),
            absl::StrCat("musafarm: artifact ut_output.txt of 7/dev/test ended at byte ",
                         big_.size(), " of ", big_.size() + 3, "\n"));
  EXPECT_EQ(service_.get_artifacts.size(), 4u);  // three pages, then nothing
  EXPECT_THAT(ListDir(dir), IsEmpty());
}

TEST_F(ArtifactsTest, UnsafeNamesAreNotWritten) {
  const std::string dir = TestDir("out");
  *service_.job.mutable_tasks(1)->add_artifacts() = MakeArtifact("../evil", 1, "");
  service_.artifacts["7/dev/test\n../evil"] = "x";
  EXPECT_EQ(RunArtifacts(env_, "7/dev/test", dir), 1);
  EXPECT_THAT(err_.str(), HasSubstr("'../evil', which is not a plain file name"));
  EXPECT_FALSE(std::filesystem::exists(dir));
  EXPECT_FALSE(std::filesystem::exists(dir + "/../evil"));
  EXPECT_TRUE(service_.get_artifacts.empty());
}

TEST_F(ArtifactsTest, UnknownTaskOrJobExitsTwoUnreachableThree) {
  EXPECT_EQ(RunArtifacts(env_, "7/nope", ""), 2);
  EXPECT_EQ(err_.str(), "musafarm: job 7 has no task 7/nope\n");
  err_.str("");
  EXPECT_EQ(RunArtifacts(env_, "9/dev/test", TestDir()), 2);
  EXPECT_EQ(err_.str(), "musafarm: no job 9\n");
  err_.str("");
  EXPECT_EQ(RunArtifacts(env_, "7", ""), 2);
  EXPECT_THAT(err_.str(), HasSubstr("not a task id"));
  err_.str("");
  env_.coordinator = "127.0.0.1:1";
  EXPECT_EQ(RunArtifacts(env_, "7/dev/test", ""), 3);
  EXPECT_THAT(err_.str(), HasSubstr("cannot reach coordinator at 127.0.0.1:1"));
}

TEST_F(ArtifactsTest, AnArtifactGoneFromTheServerExitsTwo) {
  service_.artifacts.erase("7/dev/test\njunit.xml");  // e.g. a new attempt replaced them
  const std::string dir = TestDir();
  EXPECT_EQ(RunArtifacts(env_, "7/dev/test", dir), 2);
  EXPECT_EQ(err_.str(), "musafarm: task '7/dev/test' has no artifact 'junit.xml'\n");
  EXPECT_THAT(ListDir(dir), ElementsAre("ut_output.txt"));
}

TEST_F(ArtifactsTest, StatusShowsTestsAndListsArtifacts) {
  service_.job.mutable_tasks(1)->mutable_tests()->set_passed(10);
  service_.job.mutable_tasks(1)->mutable_tests()->set_failed(2);
  EXPECT_EQ(RunStatus(env_, "7"), 0) << err_.str();
  EXPECT_THAT(
      OutLines(),
      ElementsAre(
          "job 7 (demo) succeeded in 30s", "",
          "TASK      STATE      AGENT  ATTEMPT  EXIT  DURATION  TESTS                REASON",
          "dev/base  succeeded  -      -        0     -         -                    -",
          "dev/test  succeeded  h1     -        0     -         10 passed, 2 failed  -", "",
          "artifacts: 7/dev/test: ut_output.txt (8 MiB), junit.xml (6 B), empty.log (0 B)"));
}

// Job 7: a build stage and two matrix cells with tests; the first has the
// given failures and errors.
v1::Job ResultsJob(v1::JobState state, int failed, int errors) {
  v1::Task base = MakeTask("7/dev-3.8/base", v1::TASK_STATE_SUCCEEDED);
  v1::Task a = MakeTask("7/dev-3.8/test",
                        failed + errors > 0 ? v1::TASK_STATE_FAILED : v1::TASK_STATE_SUCCEEDED);
  a.mutable_tests()->set_passed(10);
  a.mutable_tests()->set_failed(failed);
  a.mutable_tests()->set_errors(errors);
  for (int i = 0; i < failed; ++i) {
    a.mutable_tests()->add_failed_tests(absl::StrCat("tests/t.py::f", i));
  }
  v1::Task b = MakeTask("7/dev-3.10/test", v1::TASK_STATE_SUCCEEDED);
  b.mutable_tests()->set_passed(3);
  b.mutable_tests()->set_skipped(1);
  b.mutable_tests()->add_passed_tests("tests/t.py::ok");
  return MakeJob(state, {base, a, b});
}

TEST_F(CommandsTest, ResultsExitOneWithFailuresAndWriteJUnit) {
  service_.job = ResultsJob(v1::JOB_STATE_FAILED, 2, 0);
  const std::string dir = TestDir();
  const std::string file = dir + "/report.xml";
  EXPECT_EQ(RunResults(env_, "7", file), 1) << err_.str();
  EXPECT_THAT(OutLines(), ElementsAre("TASK           STATE      PASSED  FAILED  SKIPPED  ERRORS",
                                      "dev-3.8/test   failed     10      2       0        0",
                                      "dev-3.10/test  succeeded  3       0       1        0",
                                      "total          failed     13      2       1        0",
                                      "job 7 failed in 30s"));
  EXPECT_EQ(err_.str(), "");
  EXPECT_EQ(ReadFile(file), JUnitXml(service_.job));
  EXPECT_THAT(ReadFile(file),
              AllOf(HasSubstr("<testsuites tests=\"16\" failures=\"2\" errors=\"0\" "
                              "skipped=\"1\">"),
                    HasSubstr("<testcase classname=\"tests.t\" name=\"f1\">")));
  EXPECT_THAT(ListDir(dir), ElementsAre("report.xml"));  // the .part file is gone
}

TEST_F(CommandsTest, ResultsExitZeroWithoutFailures) {
  service_.job = ResultsJob(v1::JOB_STATE_SUCCEEDED, 0, 0);
  const std::string file = TestDir("report.xml");
  EXPECT_EQ(RunResults(env_, "7", file), 0) << err_.str();
  EXPECT_EQ(OutLines().back(), "job 7 succeeded in 30s");
  EXPECT_EQ(err_.str(), "");
  EXPECT_THAT(ReadFile(file), HasSubstr("<testsuites tests=\"14\" failures=\"0\" errors=\"0\""));
}

TEST_F(CommandsTest, ResultsExitOneForFailuresOrErrorsAloneOrAFailedJob) {
  // Test failures count even where the job let them pass.
  service_.job = ResultsJob(v1::JOB_STATE_SUCCEEDED, 1, 0);
  EXPECT_EQ(RunResults(env_, "7", ""), 1);
  service_.job = ResultsJob(v1::JOB_STATE_SUCCEEDED, 0, 1);
  EXPECT_EQ(RunResults(env_, "7", ""), 1);
  // No test failed, but the job did (a build stage, say).
  service_.job = ResultsJob(v1::JOB_STATE_FAILED, 0, 0);
  EXPECT_EQ(RunResults(env_, "7", ""), 1);
  service_.job = ResultsJob(v1::JOB_STATE_CANCELLED, 0, 0);
  EXPECT_EQ(RunResults(env_, "7", ""), 1);
}

TEST_F(CommandsTest, ResultsOfARunningJobArePartial) {
  service_.job = ResultsJob(v1::JOB_STATE_RUNNING, 0, 0);
  EXPECT_EQ(RunResults(env_, "7", ""), 0);
  EXPECT_EQ(err_.str(), "musafarm: job 7 is still running; these results are partial\n");
  service_.job = ResultsJob(v1::JOB_STATE_RUNNING, 1, 0);
  EXPECT_EQ(RunResults(env_, "7", ""), 1);
}

TEST_F(CommandsTest, ResultsJsonAndErrors) {
  service_.job = ResultsJob(v1::JOB_STATE_SUCCEEDED, 0, 0);
  env_.output = OutputFormat::kJson;
  EXPECT_EQ(RunResults(env_, "7", ""), 0);
  EXPECT_EQ(out_.str(), ResultsJson(service_.job) + "\n");
  EXPECT_EQ(RunResults(env_, "9", ""), 2);
  EXPECT_EQ(err_.str(), "musafarm: no job 9\n");
  err_.str("");
  EXPECT_EQ(RunResults(env_, "7/dev-3.8/test", ""), 2);
  EXPECT_THAT(err_.str(), HasSubstr("not a job id"));
  err_.str("");
  EXPECT_EQ(RunResults(env_, "7", TestDir("no/such/dir/r.xml")), 2);
  EXPECT_THAT(err_.str(), HasSubstr("cannot write "));
  env_.coordinator = "127.0.0.1:1";
  EXPECT_EQ(RunResults(env_, "7", ""), 3);
}

// The whole command line, through RunCli, in plaintext (the fixture's server
// is, and TLS has tests of its own).
int Cli(std::vector<const char*> args, CommandEnv env) {
  args.insert(args.begin(), {"musafarm", "--insecure"});
  return RunCli(static_cast<int>(args.size()), args.data(), env);
}

TEST_F(CommandsTest, CliParsesGlobalAndCommandOptions) {
  service_.job = MakeJob(v1::JOB_STATE_SUCCEEDED, {});
  const std::string addr = env_.coordinator;
  env_.coordinator = "";
  EXPECT_EQ(Cli({"jobs", "--coordinator", addr.c_str(), "-n", "3", "-o", "json"}, env_), 0)
      << err_.str();
  EXPECT_EQ(service_.list_request.limit(), 3);
  EXPECT_THAT(out_.str(), HasSubstr("\"jobs\""));
  out_.str("");
  EXPECT_EQ(Cli({"--coordinator", addr.c_str(), "cancel", "7/a"}, env_), 0) << err_.str();
  EXPECT_EQ(service_.cancelled_id, "7/a");
}

TEST_F(CommandsTest, CliRerunSendsTheJobFailedAndSecretsAndNamesTheNewJob) {
  v1::Job next = MakeJob(v1::JOB_STATE_RUNNING, {MakeTask("8/3.9/build", v1::TASK_STATE_QUEUED),
                                                 MakeTask("8/3.9/test", v1::TASK_STATE_PENDING)});
  next.set_id("8");
  service_.job = next;
  const std::string addr = env_.coordinator;
  setenv("MF_RERUN_TOKEN", "tok-value", 1);
  EXPECT_EQ(Cli({"-c", addr.c_str(), "rerun", "7", "--failed", "--secret", "MF_RERUN_TOKEN"}, env_),
            0)
      << err_.str();
  ASSERT_EQ(service_.reruns.size(), 1u);
  EXPECT_EQ(service_.reruns[0].job_id(), "7");
  EXPECT_TRUE(service_.reruns[0].failed_only());
  EXPECT_EQ(service_.reruns[0].secrets().at("MF_RERUN_TOKEN"), "tok-value");
  EXPECT_EQ(out_.str(), "submitted job 8 (2 tasks), rerun of 7\n");
  EXPECT_THAT(out_.str() + err_.str(), Not(HasSubstr("tok-value")));

  // -o json carries rerun_of; without --failed the whole job is asked for.
  out_.str("");
  EXPECT_EQ(Cli({"-c", addr.c_str(), "rerun", "7", "-o", "json"}, env_), 0) << err_.str();
  ASSERT_EQ(service_.reruns.size(), 2u);
  EXPECT_FALSE(service_.reruns[1].failed_only());
  EXPECT_THAT(out_.str(), HasSubstr("\"rerunOf\":\"7\""));

  // An unset secret variable is refused here, before any call.
  unsetenv("MF_RERUN_TOKEN");
  EXPECT_EQ(Cli({"-c", addr.c_str(), "rerun", "7", "--secret", "MF_RERUN_TOKEN"}, env_), 2);
  EXPECT_THAT(err_.str(), HasSubstr("--secret MF_RERUN_TOKEN: environment variable "
                                    "MF_RERUN_TOKEN is not set"));
  EXPECT_EQ(service_.reruns.size(), 2u);
  // --watch follows the new job (the fake's watch stream) and exits as it ended.
  service_.scripts.push_back(FailingJobScript());
  out_.str("");
  EXPECT_EQ(Cli({"-c", addr.c_str(), "rerun", "7", "--failed", "-w"}, env_), 1) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("submitted job 8 (2 tasks), rerun of 7\n"));
  EXPECT_THAT(out_.str(), HasSubstr("dev/b failed"));
  // The coordinator's refusal is printed as it says it.
  service_.submit_error = grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                       "job 7 is still running: a rerun needs it ended");
  EXPECT_EQ(Cli({"-c", addr.c_str(), "rerun", "7"}, env_), 2);
  EXPECT_THAT(err_.str(), HasSubstr("musafarm: job 7 is still running"));
}

TEST_F(CommandsTest, CliArtifactsAndResults) {
  const std::string addr = env_.coordinator;
  v1::Task t = MakeTask("7/a", v1::TASK_STATE_SUCCEEDED);
  *t.add_artifacts() = MakeArtifact("o.txt", 2, "/o.txt");
  t.mutable_tests()->set_passed(1);
  t.mutable_tests()->set_failed(1);
  service_.job = MakeJob(v1::JOB_STATE_FAILED, {t});
  service_.artifacts["7/a\no.txt"] = "hi";
  const std::string dir = TestDir("d");
  EXPECT_EQ(Cli({"artifacts", "-c", addr.c_str(), "7/a", "--dir", dir.c_str()}, env_), 0)
      << err_.str();
  EXPECT_EQ(ReadFile(dir + "/o.txt"), "hi");
  out_.str("");
  EXPECT_EQ(Cli({"artifacts", "-c", addr.c_str(), "7/a", "--output", "json"}, env_), 0);
  EXPECT_THAT(out_.str(), HasSubstr("{\"artifacts\":[{\"name\":\"o.txt\""));
  out_.str("");
  const std::string xml = dir + "/r.xml";
  EXPECT_EQ(Cli({"results", "7", "-c", addr.c_str(), "--junit", xml.c_str(), "-o", "json"}, env_),
            1)
      << err_.str();
  EXPECT_EQ(out_.str(), ResultsJson(service_.job) + "\n");
  EXPECT_EQ(ReadFile(xml), JUnitXml(service_.job));
  EXPECT_EQ(Cli({"artifacts", "7/a", "--dir"}, env_), 2);
  EXPECT_EQ(Cli({"artifacts", "7/a", "-o", dir.c_str()}, env_), 2) << "-o is the output format";
  EXPECT_EQ(Cli({"results"}, env_), 2);
}

TEST_F(CommandsTest, CliUsageErrorsExitTwo) {
  EXPECT_EQ(Cli({}, env_), 2);
  EXPECT_EQ(Cli({"status"}, env_), 2);
  EXPECT_EQ(Cli({"jobs", "--output", "xml"}, env_), 2);
  EXPECT_EQ(Cli({"jobs", "--limit", "-1"}, env_), 2);
  EXPECT_EQ(Cli({"frobnicate"}, env_), 2);
  EXPECT_THAT(err_.str(), HasSubstr("musafarm: "));
  EXPECT_EQ(Cli({"--help"}, env_), 0);
  EXPECT_THAT(out_.str(), HasSubstr("Usage: musafarm"));
}

// RFC 3339 in UTC, as protobuf prints a google.protobuf.Timestamp.
constexpr char kRfc3339[] = "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z";

// Parses one line of -o json output; fails the test on anything else.
Json ParseLine(const std::string& line) {
  Json j = Json::parse(line, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << line;
  return j;
}

TEST_F(CommandsTest, JsonOutputPrintsTimesAsRfc3339) {
  v1::Task t = MakeTask("7/a", v1::TASK_STATE_SUCCEEDED, 1, "h1");
  t.set_created_us(kT0 - 30'000'000);
  t.set_started_us(kT0 - 20'000'000);
  t.set_ended_us(kT0 - 250'000);
  service_.job = MakeJob(v1::JOB_STATE_SUCCEEDED, {t});
  env_.output = OutputFormat::kJson;

  ASSERT_EQ(RunStatus(env_, "7"), 0) << err_.str();
  Json job = ParseLine(out_.str());
  EXPECT_EQ(job["id"], "7");
  EXPECT_EQ(job["state"], "JOB_STATE_SUCCEEDED");
  EXPECT_EQ(job["createdTime"], "2023-11-14T22:12:50Z");
  EXPECT_EQ(job["endedTime"], "2023-11-14T22:13:20Z");
  const Json& task = job["tasks"][0];
  EXPECT_EQ(task["startedTime"], "2023-11-14T22:13:00Z");
  EXPECT_EQ(task["endedTime"], "2023-11-14T22:13:19.750Z");
  EXPECT_THAT(task["createdTime"].get<std::string>(), MatchesRegex(kRfc3339));
  EXPECT_FALSE(task.contains("cancelRequestedTime")) << "unset times are left out";
  // The microsecond fields stay, for readers of the proto3 mapping.
  EXPECT_EQ(job["createdUs"], "1699999970000000");
  v1::Job decoded;
  google::protobuf::util::JsonParseOptions lenient;
  lenient.ignore_unknown_fields = true;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(out_.str(), &decoded, lenient).ok());
  EXPECT_EQ(decoded.tasks(0).ended_us(), kT0 - 250'000);

  out_.str("");
  ASSERT_EQ(RunStatus(env_, "7/a"), 0) << err_.str();
  EXPECT_EQ(ParseLine(out_.str())["startedTime"], "2023-11-14T22:13:00Z");

  out_.str("");
  ASSERT_EQ(RunJobs(env_, JobsOptions()), 0) << err_.str();
  EXPECT_EQ(ParseLine(out_.str())["jobs"][0]["createdTime"], "2023-11-14T22:12:50Z");

  out_.str("");
  ASSERT_EQ(RunAgents(env_), 0) << err_.str();
  EXPECT_EQ(ParseLine(out_.str())["agents"][0]["lastSeenTime"], "2023-11-14T22:13:18Z");
}

TEST_F(CommandsTest, WatchJsonEventsCarryRfc3339Times) {
  v1::Task done = MakeTask("7/a", v1::TASK_STATE_SUCCEEDED, 1, "h1");
  done.set_ended_us(kT0);
  WatchScript s;
  s.events = {SnapshotEv(MakeJob(v1::JOB_STATE_RUNNING, {})), TaskEv(done),
              FinishedEv(MakeJob(v1::JOB_STATE_SUCCEEDED, {done}))};
  service_.scripts.push_back(s);
  env_.output = OutputFormat::kJson;
  watch_.job_id = "7";
  EXPECT_EQ(RunWatch(env_, watch_), 0) << err_.str();
  const std::vector<std::string> lines = OutLines();
  ASSERT_EQ(lines.size(), 3u) << out_.str();
  EXPECT_EQ(ParseLine(lines[0])["snapshot"]["createdTime"], "2023-11-14T22:12:50Z");
  EXPECT_EQ(ParseLine(lines[1])["task"]["endedTime"], "2023-11-14T22:13:20Z");
  EXPECT_EQ(ParseLine(lines[2])["finished"]["endedTime"], "2023-11-14T22:13:20Z");
}

TEST_F(CommandsTest, LogsJsonPrintsOneLogDataALine) {
  service_.log = "line one\n\xff\x01 two\n";
  service_.log_complete = true;
  env_.output = OutputFormat::kJson;
  EXPECT_EQ(RunLogs(env_, "7/a", /*follow=*/false), 0) << err_.str();
  std::string bytes;
  uint64_t next = 0;
  for (const std::string& line : OutLines()) {
    v1::LogData chunk;
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &chunk).ok()) << line;
    EXPECT_EQ(chunk.task_id(), "7/a");
    EXPECT_EQ(chunk.offset(), next);
    next += chunk.data().size();
    bytes += chunk.data();
  }
  EXPECT_EQ(bytes, service_.log) << "raw bytes survive, base64 in JSON";
  EXPECT_EQ(OutLines().size(), 4u);  // 16 bytes, 4 a call
}

TEST_F(CommandsTest, LogsJsonFollowPrintsTheWatchedBytesOnce) {
  service_.scripts.push_back(FollowLogScript(&service_));
  env_.output = OutputFormat::kJson;
  EXPECT_EQ(RunLogs(env_, "7/a", /*follow=*/true, watch_), 0) << err_.str();
  const std::vector<std::string> lines = OutLines();
  ASSERT_EQ(lines.size(), 3u) << out_.str();  // "0123", "456", then "789" from the watch
  v1::LogData last;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(lines[2], &last).ok()) << lines[2];
  EXPECT_EQ(last.data(), "789");
  EXPECT_EQ(last.offset(), 7u);
  EXPECT_EQ(last.attempt_id(), 1u);
}

TEST_F(CommandsTest, CliLogsTakesOutputJson) {
  service_.log = "hi\n";
  service_.log_complete = true;
  const std::string addr = env_.coordinator;
  EXPECT_EQ(Cli({"logs", "-c", addr.c_str(), "7/a", "-o", "json"}, env_), 0) << err_.str();
  EXPECT_EQ(ParseLine(out_.str())["data"], "aGkK");  // base64 of "hi\n"
}

TEST_F(CommandsTest, StatesAreColouredOnATerminalUnlessNoColorOrNever) {
  service_.job = MakeJob(v1::JOB_STATE_FAILED, {MakeTask("7/a", v1::TASK_STATE_FAILED, 1, "h1")});
  const std::string addr = env_.coordinator;
  auto status = [&](std::vector<const char*> extra) {
    out_.str("");
    std::vector<const char*> args = {"status", "7", "-c", addr.c_str()};
    args.insert(args.end(), extra.begin(), extra.end());
    EXPECT_EQ(Cli(args, env_), 1) << err_.str();
    return out_.str();
  };
  const std::string kRed = "\x1b[1;31mfailed\x1b[0m";
  unsetenv("NO_COLOR");
  EXPECT_THAT(status({}), Not(HasSubstr("\x1b["))) << "not a terminal";
  EXPECT_THAT(status({"--color", "always"}), HasSubstr(kRed));
  env_.tty = true;
  EXPECT_THAT(status({}), HasSubstr(kRed));
  EXPECT_THAT(status({"--color", "never"}), Not(HasSubstr("\x1b[")));
  setenv("NO_COLOR", "1", 1);
  EXPECT_THAT(status({}), Not(HasSubstr("\x1b[")));
  EXPECT_THAT(status({"--color=always"}), HasSubstr(kRed));
  unsetenv("NO_COLOR");
  EXPECT_EQ(Cli({"status", "7", "--color", "sometimes"}, env_), 2);
}

// The real `musafarm` binary, as a user runs it, with $MUSAFARM_CONFIG set.
class CliBinaryTest : public CommandsTest {
 protected:
  // Runs `musafarm args...` with `config` as its config file; returns the
  // exit code and stores stdout and stderr, together, in output_.
  int RunWithConfig(const std::string& config, std::vector<std::string> args) {
    const std::string path = WriteSpec(config);
    EnvMap env = InheritedEnv();
    env.erase(kCoordinatorEnv);
    env[kConfigEnv] = path;
    config_path_ = path;
    args.insert(args.begin(), {MF_CLI_BIN, "--insecure"});
    Child child = Spawn(args, env, "");
    EXPECT_TRUE(child.error.empty()) << child.error;
    output_.clear();
    bool complete = false;
    const int status = Supervise(
        child, [&](std::string s) { output_ += s; }, [] {}, absl::Seconds(5), &complete);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  std::string output_;
  std::string config_path_;
};

TEST_F(CliBinaryTest, AnUnknownKeyOrWrongTypeExitsTwoNamingFileAndKey) {
  EXPECT_EQ(RunWithConfig("coordinator: 127.0.0.1:1\ncolour: red\n", {"jobs"}), 2) << output_;
  EXPECT_EQ(output_, absl::StrCat("musafarm: bad config file: ", config_path_,
                                  ":2:1: colour: unknown field 'colour' (allowed: coordinator, ca, "
                                  "insecure, token)\n"));
  EXPECT_EQ(RunWithConfig("coordinator: [a, b]\n", {"jobs"}), 2) << output_;
  EXPECT_THAT(output_,
              HasSubstr(absl::StrCat(config_path_, ":1:14: coordinator: expected a string")));
}

TEST_F(CliBinaryTest, AFlowStyleConfigIsRead) {
  service_.job = MakeJob(v1::JOB_STATE_SUCCEEDED, {});
  EXPECT_EQ(RunWithConfig(absl::StrCat("{coordinator: ", env_.coordinator, "}\n"),
                          {"jobs", "-o", "json"}),
            0)
      << output_;
  EXPECT_EQ(ParseLine(output_)["jobs"][0]["id"], "7");
}

// The binary registers each .proto file on its first use, not at start-up
// (cli/lazy_descriptors.cc); this test binary registers them all at start-up.
// A job with a Timestamp and a Duration (imports of farm.proto, registered
// through it) prints the same from both, as JSON and as YAML.
TEST_F(CliBinaryTest, JsonAndYamlAreTheInProcessPrintersWithFilesRegisteredOnFirstUse) {
  v1::Task t = MakeTask("7/a", v1::TASK_STATE_SUCCEEDED, 1, "h1");
  t.set_started_us(kT0 - 20'000'000);
  t.set_ended_us(kT0 - 250'000);
  t.mutable_spec()->set_stage("a");
  t.mutable_spec()->mutable_run()->mutable_timeout()->set_seconds(90);
  service_.job = MakeJob(v1::JOB_STATE_SUCCEEDED, {t});
  const std::string config = absl::StrCat("coordinator: ", env_.coordinator, "\n");
  for (const char* format : {"json", "yaml"}) {
    out_.str("");
    ASSERT_EQ(Cli({"status", "7", "-c", env_.coordinator.c_str(), "-o", format}, env_), 0)
        << err_.str();
    EXPECT_THAT(out_.str(), HasSubstr("90s")) << "the Duration, by protobuf's JSON mapping";
    EXPECT_EQ(RunWithConfig(config, {"status", "7", "-o", format}), 0) << output_;
    EXPECT_EQ(output_, out_.str()) << format;
  }
}

TEST_F(CliBinaryTest, JUnitOfHostileTestNamesIsWellFormed) {
  using namespace std::string_literals;
  v1::Task t = MakeTask("7/a", v1::TASK_STATE_FAILED);
  t.mutable_tests()->set_failed(1);
  // Not UTF-8 cannot come this way: protobuf refuses it in a string field
  // (JUnitXmlTest.HostileNamesGiveWellFormedXml covers it).
  t.mutable_tests()->add_failed_tests("tests/x.py::t[<&\"'\x01\x1b\xc3\xbc]]>]"s);
  service_.job = MakeJob(v1::JOB_STATE_FAILED, {t});
  const std::string xml = TestDir("r.xml");
  EXPECT_EQ(RunWithConfig(absl::StrCat("coordinator: ", env_.coordinator, "\n"),
                          {"results", "7", "--junit", xml}),
            1)
      << output_;
  pugi::xml_document doc;
  const pugi::xml_parse_result parsed = doc.load_file(xml.c_str());
  ASSERT_TRUE(parsed) << parsed.description() << "\n" << ReadFile(xml) << output_;
  EXPECT_EQ(ReadFile(xml).find("&#1;"), std::string::npos) << "no reference to a control character";
  const pugi::xml_node tc = doc.child("testsuites").child("testsuite").child("testcase");
  EXPECT_STREQ(tc.attribute("name").value(), "t[<&\"'??\xc3\xbc]]>]");
}

// build.sh's and build_base.sh's flags, as pipelines/torch_musa.yaml declares them.
const std::vector<std::string> kTorchMusaFlags = {"-n,--name",        "-t,--tag",
                                                  "-s,--sys",         "-v,--python_version",
                                                  "-b,--base_img",    "-r,--release",
                                                  "--variant",        "-f,--docker_file",
                                                  "--torch_musa_tag", "-m,--musa_toolkits_url",
                                                  "--mudnn_url",      "--mccl_url",
                                                  "--torch_whl_url",  "--torch_musa_whl_url",
                                                  "--python_verison", "--torchaudio_whl_url",
                                                  "--torchvision_whl_url", "--no_prepare"};

TEST_F(CommandsTest, SubmitHelpListsThePipelinesOptions) {
  const std::string torch_musa = std::string(MF_SOURCE_DIR) + "/pipelines/torch_musa.yaml";
  EXPECT_EQ(Cli({"submit", torch_musa.c_str(), "--help"}, env_), 0) << err_.str();
  for (const std::string& flag : kTorchMusaFlags) EXPECT_THAT(out_.str(), HasSubstr(flag));
  EXPECT_THAT(out_.str(), HasSubstr("Options of " + torch_musa));
  EXPECT_THAT(out_.str(), HasSubstr("(secret MUSA_TOOLKITS_URL)"));
  // No file: the built-in copy of the same pipeline.
  out_.str("");
  EXPECT_EQ(Cli({"submit", "--help"}, env_), 0) << err_.str();
  for (const std::string& flag : kTorchMusaFlags) EXPECT_THAT(out_.str(), HasSubstr(flag));
  // A pipeline without `options:` has none: submit's own only.
  out_.str("");
  const std::string plain = WriteSpec(kSpec);
  EXPECT_EQ(Cli({"submit", plain.c_str(), "--help"}, env_), 0) << err_.str();
  EXPECT_THAT(out_.str(), HasSubstr("--param"));
  EXPECT_THAT(out_.str(), Not(HasSubstr("Options of")));
  for (const std::string& flag : kTorchMusaFlags) {
    EXPECT_THAT(out_.str(), Not(HasSubstr(flag.substr(flag.find("--")))));
  }
}

TEST_F(CommandsTest, SubmitWithABadOptionDeclarationIsASpecError) {
  const std::string file = WriteSpec(
      "stages: [{name: a, exec: [x]}]\noptions:\n  - {long: dry-run, flag: {param: x, value: "
      "y}}\n");
  EXPECT_EQ(Cli({"submit", file.c_str(), "--help"}, env_), 2);
  EXPECT_THAT(err_.str(), HasSubstr(file + ":3:12: options[0].long: --dry-run is an option of "
                                           "musafarm submit itself"));
  EXPECT_EQ(out_.str(), "");
}

TEST_F(CommandsTest, SubmitFileAfterThePipelinesOptionsIsRefused) {
  const std::string file = WriteSpec(kSpec);
  EXPECT_EQ(Cli({"submit", "-t", "x", file.c_str()}, env_), 2);  // options of the built-in
  EXPECT_THAT(err_.str(), HasSubstr("give the pipeline file before its options"));
  EXPECT_TRUE(service_.submits.empty());
}

// The real `musafarm` binary, as a release engineer runs it.
TEST_F(CliBinaryTest, SubmitHelpOfTorchMusaListsBuildShFlags) {
  const std::string torch_musa = std::string(MF_SOURCE_DIR) + "/pipelines/torch_musa.yaml";
  EXPECT_EQ(RunWithConfig("coordinator: 127.0.0.1:1\n", {"submit", torch_musa, "--help"}), 0)
      << output_;
  for (const std::string& flag : kTorchMusaFlags) EXPECT_THAT(output_, HasSubstr(flag));
}

}  // namespace
}  // namespace musafarm::cli
