// End-to-end tests of issue 12, item 3: every limit and bad input refused
// where it enters, with exit 2 (3 only for an unreachable coordinator), a
// message naming what is wrong and where, nothing queued, and the coordinator
// still serving. One coordinator serves the whole battery (in declaration
// order); the last test checks that its memory grew by less than 50 MB.
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/protocol_version.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "musafarm/v1/agent_service.grpc.pb.h"
#include "musafarm/v1/user_service.grpc.pb.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// VmRSS of `pid` in kB, from /proc (0 if unreadable).
int64_t RssKb(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view rest = line;
    if (absl::ConsumePrefix(&rest, "VmRSS:")) {
      int64_t kb = 0;
      std::vector<std::string> parts = absl::StrSplit(rest, ' ', absl::SkipWhitespace());
      if (!parts.empty() && absl::SimpleAtoi(parts[0], &kb)) return kb;
    }
  }
  return 0;
}

// A binary of the farm run with `args`, its output (stdout and stderr) and exit code.
struct BinaryRun {
  int exit_code = -1;
  std::string output;
};

class LimitsTest : public ::testing::Test {
 protected:
  // The farm is made by the first test (Farm names its directory after the
  // running test, which SetUpTestSuite does not have) and kept for the rest.
  void SetUp() override {
    if (farm_ != nullptr) return;
    farm_ = new Farm();
    farm_->StartCoordinator();
    farm_->StartAgent("agent-1", {"os=linux"}, 1);
    ASSERT_TRUE(WaitFor([] { return farm_->Agents().size() == 1; })) << "agent did not register";
    rss_before_kb_ = RssKb(farm_->coordinator()->pid());
  }
  static void TearDownTestSuite() {
    delete farm_;
    farm_ = nullptr;
  }

  // The coordinator still answers and holds no job: nothing was queued.
  static void ExpectServingAndNothingQueued() {
    ASSERT_TRUE(farm_->coordinator()->Running()) << farm_->coordinator()->Output();
    CliResult jobs = farm_->Cli({"jobs", "-o", "json"});
    ASSERT_EQ(jobs.exit_code, 0) << jobs.err;
    EXPECT_THAT(jobs.out, Not(HasSubstr("\"id\""))) << "a job was queued: " << jobs.out;
  }

  // `musafarm submit FILE args...` against the farm: expects exit 2, with
  // `where` and `what` in its error, and nothing queued.
  static void ExpectRefused(const std::vector<std::string>& args, const std::string& where,
                            const std::string& what) {
    CliResult r = farm_->Cli(args);
    EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
    EXPECT_THAT(r.err, HasSubstr(where));
    EXPECT_THAT(r.err, HasSubstr(what));
    EXPECT_THAT(r.err, Not(HasSubstr("\x1b"))) << "printed raw";
    ExpectServingAndNothingQueued();
  }

  // Runs a farm binary directly (its own --coordinator/--listen flags).
  static BinaryRun RunBinary(const std::vector<std::string>& argv) {
    static int n = 0;
    auto p = Process::Start(argv, absl::StrCat(farm_->dir(), "/bin-", n++, ".log"));
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return {};
    BinaryRun r;
    r.exit_code = (*p)->Wait(absl::Seconds(60));
    r.output = (*p)->Output();
    return r;
  }

  static Farm* farm_;
  static int64_t rss_before_kb_;
};

Farm* LimitsTest::farm_ = nullptr;
int64_t LimitsTest::rss_before_kb_ = 0;

// What a hand-written agent got for one message: the stream's end.
grpc::Status RawRegister(const std::string& address, const v1::AgentMessage& msg) {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  auto stub = v1::AgentService::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = stub->Connect(&ctx);
  // No WritesDone: a half-close would end the stream OK before the refusal.
  stream->Write(msg);
  v1::CoordinatorMessage in;
  while (stream->Read(&in)) {
  }
  return stream->Finish();
}

// Issue 12: one register with a 15 MB name and 100,000 labels was stored, and
// `musafarm agents` failed from then on.
TEST_F(LimitsTest, OversizedRegisterIsRefusedAndAgentsStillLists) {
  v1::AgentMessage huge;
  huge.mutable_register_()->set_name(std::string(15'000'000, 'n'));
  for (int i = 0; i < 100'000; ++i) huge.mutable_register_()->add_labels(absl::StrCat("l", i));
  huge.mutable_register_()->set_slots(1);
  grpc::Status s = RawRegister(farm_->address(), huge);
  // Refused by gRPC before it is decoded: over the coordinator's 4 MiB.
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("larger than max"));

  // Within the message size, past the field limits: refused naming the field.
  v1::AgentMessage labels = huge;
  labels.mutable_register_()->set_name("many-labels");
  s = RawRegister(farm_->address(), labels);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "register: labels: 100000 given; the limit is 64");

  v1::AgentMessage name = huge;
  name.mutable_register_()->clear_labels();
  name.mutable_register_()->set_name(std::string(1'000'000, 'n'));
  s = RawRegister(farm_->address(), name);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("register: name: is 1000000 bytes long; the limit is 128"));

  v1::AgentMessage escape = huge;
  escape.mutable_register_()->clear_labels();
  escape.mutable_register_()->set_name("evil\x1b[2J\nname");
  s = RawRegister(farm_->address(), escape);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("'evil\\e[2J\\nname' holds a control character"));

  CliResult agents = farm_->Cli({"agents"});
  EXPECT_EQ(agents.exit_code, 0) << agents.err;
  EXPECT_THAT(agents.out, HasSubstr("agent-1"));
  EXPECT_THAT(agents.out, Not(HasSubstr("many-labels")));
  // Nothing of it stored or logged at length (it was 45 MB of log).
  EXPECT_LT(farm_->coordinator()->Output().size(), 1u << 20);
  ExpectServingAndNothingQueued();
}

// Issue 16, item 2: an agent of a protocol this coordinator cannot serve is
// refused at registration with both versions named, and nothing of it is kept.
TEST_F(LimitsTest, AnAgentOfAnUnsupportedProtocolIsRefusedNamingBothVersions) {
  v1::AgentMessage reg;
  reg.mutable_register_()->set_name("from-the-future");
  reg.mutable_register_()->set_slots(1);
  reg.mutable_register_()->set_protocol_version(99);
  grpc::Status s = RawRegister(farm_->address(), reg);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << s.error_message();
  EXPECT_THAT(s.error_message(),
              HasSubstr(absl::StrCat("agent protocol 99 is not supported by this coordinator "
                                     "(protocol ",
                                     kProtocolVersion, ", agents ", kMinAgentProtocolVersion, "..",
                                     kProtocolVersion, ")")));
  EXPECT_TRUE(WaitFor([] {
    return absl::StrContains(farm_->coordinator()->Output(),
                             "refusing agent 'from-the-future'");
  }));
  CliResult agents = farm_->Cli({"agents"});
  EXPECT_EQ(agents.exit_code, 0) << agents.err;
  EXPECT_THAT(agents.out, HasSubstr("agent-1"));
  EXPECT_THAT(agents.out, Not(HasSubstr("from-the-future")));
  ExpectServingAndNothingQueued();
}

// Issue 12: an undecodable message on an agent stream ended it with OK.
TEST_F(LimitsTest, UndecodableAgentMessageEndsTheStreamWithInvalidArgument) {
  v1::AgentMessage reg;
  reg.mutable_register_()->set_name("bad-\xff-utf8");  // protobuf refuses to decode it
  grpc::Status s = RawRegister(farm_->address(), reg);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("does not decode as musafarm.v1.AgentMessage"));
  CliResult agents = farm_->Cli({"agents"});
  EXPECT_EQ(agents.exit_code, 0) << agents.err;
  ExpectServingAndNothingQueued();
}

// Issue 12: 127.0.0.1:99999 dialled another port, 127.0.0.1 port 0, and a
// malformed address exited 3. Every binary now exits 2 naming the flag.
TEST_F(LimitsTest, AddressesAreValidatedByEveryBinary) {
  struct Case {
    std::string address, why;
  };
  const std::vector<Case> cases = {
      {"127.0.0.1:99999", "port 99999 is out of range (1-65535)"},
      {"127.0.0.1", "no port; expected HOST:PORT"},
      {"127.0.0.1:", "no port after ':'"},
      {"127.0.0.1:http", "port 'http' is not a number"},
      {"not an address", "no port"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.address);
    BinaryRun cli = RunBinary({MF_CLI_BIN, "--insecure", "--coordinator", c.address, "jobs"});
    EXPECT_EQ(cli.exit_code, 2) << cli.output;
    EXPECT_THAT(cli.output, HasSubstr(absl::StrCat("--coordinator '", c.address, "': ", c.why)));
    BinaryRun agent = RunBinary({MF_AGENT_BIN, "--insecure", "--coordinator", c.address, "--work-dir",
                           farm_->dir() + "/bad-agent", "--name", "x"});
    EXPECT_EQ(agent.exit_code, 2) << agent.output;
    EXPECT_THAT(agent.output, HasSubstr(absl::StrCat("--coordinator '", c.address, "': ", c.why)));
  }
  BinaryRun listen = RunBinary({MF_COORDINATOR_BIN, "--insecure", "--listen", "127.0.0.1:99999",
                          "--data-dir", farm_->dir() + "/bad-coordinator"});
  EXPECT_EQ(listen.exit_code, 2) << listen.output;
  EXPECT_THAT(listen.output, HasSubstr("--listen '127.0.0.1:99999': port 99999 is out of range (0-65535)"));
  BinaryRun missing = RunBinary({MF_COORDINATOR_BIN, "--insecure", "--listen", "localhost",
                           "--data-dir", farm_->dir() + "/bad-coordinator"});
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_THAT(missing.output, HasSubstr("--listen 'localhost': no port"));
  // A well-formed address nobody answers at is still "unreachable": 3.
  BinaryRun unreachable = RunBinary({MF_CLI_BIN, "--insecure", "--coordinator", "127.0.0.1:1", "jobs"});
  EXPECT_EQ(unreachable.exit_code, 3) << unreachable.output;
  ExpectServingAndNothingQueued();
}

// The agent checks its own name and labels against the limits the
// coordinator applies at register: exit 2 at start, not a refused stream at
// every reconnect.
TEST_F(LimitsTest, AgentRefusesAnOversizedOrControlNameAndTooManyLabels) {
  const std::vector<std::string> base = {MF_AGENT_BIN, "--insecure", "--coordinator",
                                         farm_->address(), "--work-dir",
                                         farm_->dir() + "/bad-agent"};
  auto with = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), extra.begin(), extra.end());
    return RunBinary(argv);
  };
  BinaryRun name = with({"--name", std::string(5000, 'a')});
  EXPECT_EQ(name.exit_code, 2) << name.output;
  EXPECT_THAT(name.output, HasSubstr("--name: is 5000 bytes long; the limit is 128"));
  BinaryRun esc = with({"--name", "a\x1b[2Jb"});
  EXPECT_EQ(esc.exit_code, 2) << esc.output;
  EXPECT_THAT(esc.output, HasSubstr("--name: 'a\\e[2Jb' holds a control character"));
  std::string labels;
  for (int i = 0; i < 100; ++i) absl::StrAppend(&labels, i == 0 ? "" : ",", "l", i);
  BinaryRun many = with({"--name", "ok", "--label", labels});
  EXPECT_EQ(many.exit_code, 2) << many.output;
  EXPECT_THAT(many.output, HasSubstr("--label: 100 labels; the limit is 64"));
  ASSERT_EQ(farm_->Agents().size(), 1u);  // only agent-1
  ExpectServingAndNothingQueued();
}

// Issue 12: non-UTF-8 bytes gave a libprotobuf error, UNIMPLEMENTED and exit 1.
TEST_F(LimitsTest, NonUtf8SpecIsNamedWithFileLineColumn) {
  const std::string file = farm_->WritePipeline(
      "latin1.yaml", "stages:\n  - name: s\n    exec: [\"echo\", \"caf\xe9\"]\n");
  ExpectRefused({"submit", file}, file + ":3:24:", "byte 0xe9 is not UTF-8");
}

// Issue 12: a 100 MB spec was read and sent whole (exit 1). The CLI checks
// the size before reading (a sparse file: nothing of it is ever read).
TEST_F(LimitsTest, HugeSpecIsRefusedBeforeItIsRead) {
  const std::string file = farm_->dir() + "/huge.yaml";
  { std::ofstream(file) << "stages: []\n"; }
  std::filesystem::resize_file(file, 100u << 20);
  ExpectRefused({"submit", file}, file + ": is 104857600 bytes",
                "a pipeline file may be at most 1048576");
}

// The coordinator checks the size too, for clients other than the CLI.
TEST_F(LimitsTest, CoordinatorRefusesAnOversizedSpecFromARawClient) {
  auto stub = v1::UserService::NewStub(
      grpc::CreateChannel(farm_->address(), grpc::InsecureChannelCredentials()));
  v1::SubmitRequest req;
  req.set_spec_file("raw.yaml");
  req.set_spec_yaml(std::string(2 << 20, '#'));
  v1::SubmitResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Status s = stub->Submit(&ctx, req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("raw.yaml:1:1: pipeline: is 2097152 bytes"));
  ExpectServingAndNothingQueued();
}

// Issue 12: `gpus: 1000000000` was accepted and waited forever. The CLI
// refuses what no agent could have; the coordinator its --max-gpus-per-stage (64).
TEST_F(LimitsTest, GpusPerStageAreBounded) {
  const std::string billion = farm_->WritePipeline(
      "gpus.yaml", "stages:\n  - name: train\n    gpus: 1000000000\n    exec: [\"true\"]\n");
  ExpectRefused({"submit", billion}, billion + ":3:11: stages[0].gpus:",
                "1000000000 GPUs is more than a stage may ask for (at most 1024, what an agent may "
                "declare)");
  const std::string many = farm_->WritePipeline(
      "gpus65.yaml", "stages:\n  - name: train\n    gpus: 65\n    exec: [\"true\"]\n");
  ExpectRefused({"submit", many}, many + ":3:11: stages[0].gpus:",
                "65 GPUs is more than a stage may ask for (at most 64; the coordinator's "
                "--max-gpus-per-stage)");
}

// Issue 12: a 5,000-character stage name failed only when an agent made its directory.
TEST_F(LimitsTest, LongStageNameIsRefusedAtSubmit) {
  const std::string file = farm_->WritePipeline(
      "long.yaml", absl::StrCat("stages:\n  - name: ", std::string(5000, 's'),
                                "\n    exec: [\"true\"]\n"));
  ExpectRefused({"submit", file}, file + ":2:11: stages[0].name:",
                "stage name is 5000 bytes long; the limit is 128");
}

// Issue 12: a timeout of 99999999999h and 10^9 retries were accepted.
TEST_F(LimitsTest, TimeoutsAndRetriesHaveUpperBounds) {
  const std::string timeout = farm_->WritePipeline(
      "timeout.yaml", "stages:\n  - name: s\n    timeout: 99999999999h\n    exec: [\"true\"]\n");
  ExpectRefused({"submit", timeout}, timeout + ":3:14: stages[0].timeout:",
                "'99999999999h' is longer than the limit of 168h (7 days)");
  const std::string retries = farm_->WritePipeline(
      "retries.yaml", "stages:\n  - name: s\n    retries: 1000000000\n    exec: [\"true\"]\n");
  ExpectRefused({"submit", retries}, retries + ":3:14: stages[0].retries:",
                "1000000000 retries is more than the limit of 100");
}

// Issue 12: names with ESC and newlines were printed raw to terminals and logs.
TEST_F(LimitsTest, ControlCharactersInNamesAreRefusedAndEscaped) {
  const std::string file = farm_->WritePipeline(
      "esc.yaml", "name: \"evil\\e[31mred\\nline\"\nstages:\n  - name: s\n    exec: [\"true\"]\n");
  ExpectRefused({"submit", file}, file + ":1:7: name:",
                "'evil\\e[31mred\\nline' holds a control character");
  const std::string plain = farm_->WritePipeline(
      "plain.yaml", "stages:\n  - name: s\n    exec: [\"true\"]\n");
  ExpectRefused({"submit", plain, "--job-name", "a\x1b]0;pwned\x07"}, plain + ": job name",
                "'a\\e]0;pwned\\x07' holds a control character");
  const std::string stage = farm_->WritePipeline(
      "stage-esc.yaml", "stages:\n  - name: \"s\\e[2J\"\n    exec: [\"true\"]\n");
  ExpectRefused({"submit", stage}, stage + ":2:11: stages[0].name:", "stage name 's\\e[2J'");
  // Nothing of the refused names reached the coordinator's log raw.
  EXPECT_THAT(farm_->coordinator()->Output(), Not(HasSubstr("\x1b")));
}

// Issue 12 acceptance: the coordinator's RSS grew by less than 50 MB over the
// whole battery above (run in declaration order on the same coordinator).
TEST_F(LimitsTest, CoordinatorMemoryStayedBoundedOverTheBattery) {
  ASSERT_GT(rss_before_kb_, 0);
  const int64_t after_kb = RssKb(farm_->coordinator()->pid());
  // The figure BENCHMARKS.md quotes.
  std::cout << "coordinator VmRSS before the battery " << rss_before_kb_ << " kB, after "
            << after_kb << " kB\n";
  RecordProperty("rss_growth_kb", static_cast<int>(after_kb - rss_before_kb_));
  EXPECT_LT(after_kb - rss_before_kb_, 50 * 1024)
      << "VmRSS before " << rss_before_kb_ << " kB, after " << after_kb << " kB";
  ExpectServingAndNothingQueued();
}

// Issue 12: past --max-log-bytes a task's output is dropped after one marker
// line, the task goes on (it writes a file after its output), and its result
// says truncated: in `logs`, `status -o json` and the log page.
TEST(LogLimitTest, OutputPastMaxLogBytesIsDroppedAfterOneMarkerAndTheTaskGoesOn) {
  Farm farm;
  farm.StartCoordinator({"--max-log-bytes", "4KiB"});
  farm.StartAgent("agent-1", {"os=linux"}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; })) << "agent did not register";
  const std::string after = farm.dir() + "/went-on";
  // 2,000 lines of 100 bytes: 200 kB, 50 times the limit.
  const std::string file = farm.WritePipeline(
      "chatty.yaml", absl::StrCat("stages:\n  - name: chatty\n    shell: |\n"
                                  "      i=0; while [ $i -lt 2000 ]; do printf '%099d\\n' $i; "
                                  "i=$((i+1)); done\n      touch '",
                                  after, "'\n"));
  CliResult r = farm.Cli({"submit", file, "--watch"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(std::filesystem::exists(after)) << "the task did not go on past the limit";
  CliResult log = farm.Cli({"logs", "1/chatty"});
  ASSERT_EQ(log.exit_code, 0) << log.err;
  const std::string marker =
      "\n[musafarm] log truncated at 4096 bytes (the coordinator's --max-log-bytes); further "
      "output dropped\n";
  ASSERT_EQ(log.out.size(), 4096 + marker.size()) << log.out.substr(4096);
  EXPECT_EQ(log.out.substr(0, 100), std::string(99, '0') + "\n");
  EXPECT_EQ(log.out.substr(4096), marker);
  CliResult status = farm.Cli({"status", "1", "-o", "json"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_THAT(status.out, HasSubstr("\"logTruncated\":true")) << status.out;
  EXPECT_THAT(status.out, HasSubstr("\"state\":\"TASK_STATE_SUCCEEDED\"")) << status.out;
  // The agent learnt the limit from its assignment and dropped the other
  // 200,000 - 4,096 bytes itself: they never crossed the network.
  EXPECT_THAT(farm.coordinator()->Output(),
              HasSubstr("task=1/chatty attempt=1: the agent dropped 195904 bytes of output past "
                        "--max-log-bytes"))
      << farm.coordinator()->Output();
}

// A coordinator of a protocol this agent does not speak: it reads the
// registration and ends the stream with the refusal a real one sends, and
// counts the streams opened.
class RefusingCoordinator final : public v1::AgentService::CallbackService {
 public:
  static constexpr char kWhy[] =
      "agent protocol 2 is not supported by this coordinator (protocol 9, agents 9..9)";

  grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>* Connect(
      grpc::CallbackServerContext*) override {
    absl::MutexLock lock(&mu_);
    ++streams_;
    return new Stream();
  }
  int streams() {
    absl::MutexLock lock(&mu_);
    return streams_;
  }

 private:
  class Stream final : public grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage> {
   public:
    Stream() { StartRead(&in_); }
    void OnReadDone(bool ok) override {
      Finish(ok ? grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, kWhy)
                : grpc::Status(grpc::StatusCode::CANCELLED, "no registration"));
    }
    void OnDone() override { delete this; }

   private:
    v1::AgentMessage in_;
  };
  absl::Mutex mu_;
  int streams_ ABSL_GUARDED_BY(mu_) = 0;
};

// Issue 16, item 2: refused for its protocol, the real agent binary says why
// and exits 1 at once instead of reconnecting for ever.
TEST(AgentProtocolTest, ARefusedAgentExitsOneSayingWhyWithoutRetrying) {
  RefusingCoordinator coordinator;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&coordinator);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);
  const std::string dir = ::testing::TempDir() + "/refused-agent-" + std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  auto agent = Process::Start({MF_AGENT_BIN, "--coordinator", absl::StrCat("127.0.0.1:", port),
                               "--name", "refused", "--slots", "1", "--work-dir", dir + "/work",
                               "--insecure", "--no-gpu-detect"},
                              dir + ".log");
  ASSERT_TRUE(agent.ok()) << agent.status();
  EXPECT_EQ((*agent)->Wait(absl::Seconds(60)), 1) << (*agent)->Output();
  EXPECT_THAT((*agent)->Output(), HasSubstr(absl::StrCat("musafarm-agent: ", RefusingCoordinator::kWhy)));
  EXPECT_THAT((*agent)->Output(), HasSubstr("refused this agent for good"));
  EXPECT_EQ(coordinator.streams(), 1);
  server->Shutdown();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace musafarm::e2e
