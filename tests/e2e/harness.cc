#include "tests/e2e/harness.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/e2e/sanitizer_report.h"

extern char** environ;

namespace musafarm::e2e {
namespace {

// Reads the CLI's -o json output into the message it prints. The CLI adds an
// RFC 3339 "xTime" beside each "xUs" time, which the message may not have.
bool ParseCliJson(const std::string& json, google::protobuf::Message* msg) {
  google::protobuf::util::JsonParseOptions opts;
  opts.ignore_unknown_fields = true;
  return google::protobuf::util::JsonStringToMessage(json, msg, opts).ok();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Process>> Process::Start(const std::vector<std::string>& argv,
                                                        const std::string& log_path,
                                                        std::vector<std::string> env) {
  std::vector<char*> c_env;
  for (std::string& e : env) c_env.push_back(e.data());
  c_env.push_back(nullptr);
  std::vector<char*> c_argv;
  std::vector<std::string> copy = argv;
  for (std::string& a : copy) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  int rc = posix_spawn(&pid, c_argv[0], &actions, nullptr, c_argv.data(),
                       env.empty() ? environ : c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return absl::InternalError(absl::StrCat("spawn ", argv[0], ": ", strerror(rc)));
  return std::unique_ptr<Process>(new Process(pid, log_path));
}

Process::~Process() {
  if (Running()) {
    Signal(SIGKILL);
    Wait(absl::Seconds(10));
  }
  // In the sanitizer build a report ends the child with a non-zero exit that
  // the test may have expected for other reasons, or never waited for.
  if (const std::string report = FindSanitizerReport(Output()); !report.empty()) {
    ADD_FAILURE() << log_ << " holds a sanitizer report:\n" << report;
  }
}

void Process::Signal(int sig) {
  if (!reaped_) ::kill(pid_, sig);
}

bool Process::Running() {
  if (reaped_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped_ = true;
    status_ = status;
    return false;
  }
  return true;
}

int Process::Wait(absl::Duration timeout) {
  if (!WaitFor([this] { return !Running(); }, timeout)) return -1;
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  return 128 + WTERMSIG(status_);
}

std::string Process::Output() const { return ReadFile(log_); }

bool WaitFor(const std::function<bool()>& cond, absl::Duration timeout) {
  // On the monotonic clock: the wall clock steps (a VM snapshot restored, NTP), and a step
  // forward would end every wait at once ("coordinator did not stop" after 378 ms in CI).
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoNanoseconds(timeout);
  for (;;) {
    if (cond()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

int RunToExit(const std::vector<std::string>& argv, const std::string& log, std::string* output,
              absl::Duration timeout) {
  auto p = Process::Start(argv, log);
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return -1;
  const int code = (*p)->Wait(timeout);
  *output = (*p)->Output();
  return code;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

Farm::Farm(FarmOptions options) : options_(std::move(options)) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  // Parameterized tests have '/' in their names ("Seeds/Suite", "Name/seed_7"): one directory.
  const std::string name = absl::StrReplaceAll(
      absl::StrCat("musafarm-e2e-", info->test_suite_name(), "-", info->name(), "-", ::getpid()),
      {{"/", "_"}});
  dir_ = (std::filesystem::temp_directory_path() / name).string();
  std::filesystem::remove_all(dir_);
  std::filesystem::create_directories(dir_);
}

Farm::~Farm() {
  // Agents first, so they do not log a storm of reconnects.
  for (auto& [name, agent] : agents_) {
    agent->Signal(SIGTERM);
    if (agent->Wait(absl::Seconds(15)) < 0) agent->Signal(SIGKILL);
  }
  agents_.clear();
  if (coordinator_ != nullptr && coordinator_->Running()) StopCoordinator(SIGTERM);
  if (!::testing::Test::HasFailure()) {
    std::filesystem::remove_all(dir_);
  } else {
    std::cerr << "farm files kept in " << dir_ << "\n";
  }
}

std::string Farm::address() const { return absl::StrCat("127.0.0.1:", port_); }

std::string Farm::CliCoordinator() const {
  return cli_coordinator_.empty() ? address() : cli_coordinator_;
}

pki::Ca Farm::FarmCa() const {
  return pki::Ca{ReadFile(data_dir() + "/pki/ca.crt"), ReadFile(data_dir() + "/pki/ca.key")};
}

void Farm::GiveAgentCertificate(const std::string& instance, const std::string& common_name,
                                const AgentCertOptions& options) {
  const pki::Ca ca = options.ca != nullptr ? *options.ca : FarmCa();
  absl::StatusOr<std::string> key = pki::GeneratePrivateKey();
  ASSERT_TRUE(key.ok()) << key.status();
  absl::StatusOr<std::string> csr = pki::MakeCsr(*key, common_name);
  ASSERT_TRUE(csr.ok()) << csr.status();
  pki::IssueOptions issue;
  issue.common_name = common_name;
  issue.client = true;
  issue.not_before = absl::Now() + options.valid_from;
  issue.not_after = absl::Now() + options.valid_for;
  absl::StatusOr<std::string> cert = pki::SignCsr(ca, *csr, issue);
  ASSERT_TRUE(cert.ok()) << cert.status();
  const std::string pki_dir = agent_dir(instance) + "/pki";
  std::filesystem::create_directories(pki_dir);
  WriteFile(pki_dir + "/agent.key", *key);
  std::filesystem::permissions(pki_dir + "/agent.key", std::filesystem::perms::owner_read |
                                                           std::filesystem::perms::owner_write);
  WriteFile(pki_dir + "/agent.crt", *cert);
  // The agent verifies the coordinator with the farm's CA, whoever signed its own.
  WriteFile(pki_dir + "/ca.crt", ReadFile(ca_file()));
}

std::vector<std::string> Farm::CliSecurityFlags() const {
  if (options_.tls) return {"--ca", ca_file()};
  return {"--insecure"};
}

void Farm::StartCoordinator(const std::vector<std::string>& extra_flags) {
  const std::string port_file = dir_ + "/coordinator.port";
  std::filesystem::remove(port_file);
  if (options_.tls && !std::filesystem::exists(ca_file())) {
    std::vector<std::string> init = {MF_COORDINATOR_BIN, "ca", "init", "--data-dir", data_dir()};
    init.insert(init.end(), options_.ca_init_flags.begin(), options_.ca_init_flags.end());
    auto p = Process::Start(init, dir_ + "/ca-init.log");
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_EQ((*p)->Wait(absl::Seconds(60)), 0) << (*p)->Output();
  }
  std::vector<std::string> argv = {
      MF_COORDINATOR_BIN,   "--listen", absl::StrCat("127.0.0.1:", port_),
      "--port-file",        port_file,  "--data-dir",
      dir_ + "/coordinator"};
  if (!options_.tls) argv.push_back("--insecure");
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  auto p = Process::Start(argv, dir_ + "/coordinator.log");
  ASSERT_TRUE(p.ok()) << p.status();
  coordinator_ = *std::move(p);
  ++coordinator_starts_;
  ASSERT_TRUE(WaitFor([&] {
    return std::filesystem::exists(port_file) || !coordinator_->Running();
  })) << coordinator_->Output();
  ASSERT_TRUE(coordinator_->Running()) << coordinator_->Output();
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(port_file)), &port));
  port_ = port;
  // A TLS coordinator wants a token on every user call: the CLI runs as admin.
  if (options_.tls && admin_token_.empty()) admin_token_ = MakeToken("e2e-admin", "admin");
}

std::string Farm::MakeToken(const std::string& user, const std::string& role,
                            const std::vector<std::string>& extra_flags) {
  std::vector<std::string> argv = {MF_COORDINATOR_BIN, "token",      "create",  user,
                                   "--role",           role,         "--data-dir", data_dir()};
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  std::string output;
  const int rc = RunToExit(argv, absl::StrCat(dir_, "/token-create-", user, ".log"), &output);
  EXPECT_EQ(rc, 0) << output;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (absl::StartsWith(line, "mfu1.")) return std::string(line);
  }
  ADD_FAILURE() << "no token in the output of token create: " << output;
  return "";
}

namespace {

// The test's environment for a CLI run, with MUSAFARM_TOKEN set to `token`
// (and none when it is empty): a token of the test runner's never leaks in.
std::vector<std::string> CliEnvironment(const std::string& token) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    if (!absl::StartsWith(*e, "MUSAFARM_TOKEN=")) env.emplace_back(*e);
  }
  if (!token.empty()) env.push_back("MUSAFARM_TOKEN=" + token);
  return env;
}

}  // namespace

void Farm::StopCoordinator(int sig) {
  coordinator_->Signal(sig);
  ASSERT_GE(coordinator_->Wait(absl::Seconds(20)), 0) << "coordinator did not stop";
}

Process* Farm::StartAgent(const std::string& name, const std::vector<std::string>& labels,
                          int slots, const std::vector<std::string>& extra_flags) {
  return StartAgentVia(address(), name, labels, slots, extra_flags);
}

Process* Farm::StartAgentVia(const std::string& coordinator, const std::string& name,
                             const std::vector<std::string>& labels, int slots,
                             const std::vector<std::string>& extra_flags) {
  return StartAgentProcess(coordinator, name, name, labels, slots, extra_flags);
}

Process* Farm::StartAgentInstance(const std::string& instance, const std::string& name,
                                  const std::vector<std::string>& labels, int slots) {
  return StartAgentProcess(address(), instance, name, labels, slots, {});
}

Process* Farm::StartAgentProcess(const std::string& coordinator, const std::string& instance,
                                 const std::string& name, const std::vector<std::string>& labels,
                                 int slots, const std::vector<std::string>& extra_flags) {
  std::vector<std::string> argv = {MF_AGENT_BIN,
                                   "--coordinator",
                                   coordinator,
                                   "--name",
                                   name,
                                   "--slots",
                                   absl::StrCat(slots),
                                   "--work-dir",
                                   agent_dir(instance),
                                   "--kill-grace",
                                   "1"};
  if (!options_.tls) {
    argv.push_back("--insecure");
  } else if (!std::filesystem::exists(agent_dir(instance) + "/pki/agent.crt")) {
    GiveAgentCertificate(instance, name);
  }
  for (const std::string& l : labels) {
    argv.push_back("--label");
    argv.push_back(l);
  }
  argv.insert(argv.end(), extra_flags.begin(), extra_flags.end());
  if (!agent_cwd_.empty()) argv.insert(argv.begin(), {"/usr/bin/env", "-C", agent_cwd_});
  auto p = Process::Start(argv, dir_ + "/agent-" + instance + ".log");
  EXPECT_TRUE(p.ok()) << p.status();
  // Not p->get() on an error: that aborts the test binary, and the coordinator outlives it.
  if (!p.ok()) return nullptr;
  Process* raw = p->get();
  agents_[instance] = *std::move(p);
  return raw;
}

std::unique_ptr<Process> Farm::CliAsync(const std::vector<std::string>& args,
                                        const std::string& log) {
  std::vector<std::string> argv = {MF_CLI_BIN, "--coordinator", CliCoordinator()};
  for (const std::string& flag : CliSecurityFlags()) argv.push_back(flag);
  argv.insert(argv.end(), args.begin(), args.end());
  auto p = Process::Start(argv, log, CliEnvironment(admin_token_));
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *std::move(p) : nullptr;
}

CliResult Farm::Cli(const std::vector<std::string>& args, absl::Duration timeout) {
  return CliWithToken(admin_token_, args, timeout);
}

CliResult Farm::CliWithToken(const std::string& token, const std::vector<std::string>& args,
                             absl::Duration timeout) {
  static int n = 0;
  const std::string base = absl::StrCat(dir_, "/cli-", n++);
  std::vector<std::string> argv = {MF_CLI_BIN, "--coordinator", CliCoordinator()};
  for (const std::string& flag : CliSecurityFlags()) argv.push_back(flag);
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> c_argv;
  for (std::string& a : argv) c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, (base + ".out").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, (base + ".err").c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  std::vector<std::string> env = CliEnvironment(token);
  std::vector<char*> c_env;
  for (std::string& e : env) c_env.push_back(e.data());
  c_env.push_back(nullptr);
  pid_t pid = 0;
  CliResult r;
  int rc = posix_spawn(&pid, c_argv[0], &actions, nullptr, c_argv.data(), c_env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return r;
  int status = 0;
  bool done = WaitFor([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!done) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, &status, 0);
  }
  r.exit_code = done && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = ReadFile(base + ".out");
  r.err = ReadFile(base + ".err");
  if (const std::string report = FindSanitizerReport(r.err); !report.empty()) {
    ADD_FAILURE() << "musafarm " << absl::StrJoin(args, " ") << ": sanitizer report:\n" << report;
  }
  return r;
}

std::string Farm::WritePipeline(const std::string& name, const std::string& yaml) {
  const std::string path = dir_ + "/" + name;
  WriteFile(path, yaml);
  return path;
}

std::string Farm::Submit(const std::string& pipeline_file, const std::vector<std::string>& flags) {
  std::vector<std::string> args = {"submit", pipeline_file, "--output", "json"};
  args.insert(args.end(), flags.begin(), flags.end());
  CliResult r = Cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  v1::Job job;
  EXPECT_TRUE(ParseCliJson(r.out, &job)) << r.out;
  return job.id();
}

absl::StatusOr<v1::Job> Farm::Job(const std::string& id) {
  CliResult r = Cli({"status", id, "--output", "json"});
  if (r.exit_code != 0 && r.exit_code != 1) {
    return absl::UnavailableError(absl::StrCat("status exit ", r.exit_code, ": ", r.err));
  }
  v1::Job job;
  if (!ParseCliJson(r.out, &job)) return absl::InternalError(absl::StrCat("bad json: ", r.out));
  return job;
}

std::vector<v1::Agent> Farm::Agents() {
  CliResult r = Cli({"agents", "--output", "json"});
  v1::ListAgentsResponse resp;
  if (r.exit_code != 0 || !ParseCliJson(r.out, &resp))
    return {};
  return {resp.agents().begin(), resp.agents().end()};
}

bool Farm::WaitForJobEnd(const std::string& id, absl::Duration timeout) {
  return WaitFor(
      [&] {
        auto job = Job(id);
        return job.ok() && job->state() != v1::JOB_STATE_RUNNING;
      },
      timeout);
}

bool Farm::WaitForTaskState(const std::string& job_id, const std::string& task, v1::TaskState state,
                            absl::Duration timeout) {
  return WaitFor(
      [&] {
        auto job = Job(job_id);
        if (!job.ok()) return false;
        const v1::Task* t = FindTask(*job, task);
        return t != nullptr && t->state() == state;
      },
      timeout);
}

const v1::Task* FindTask(const v1::Job& job, const std::string& suffix) {
  for (const v1::Task& t : job.tasks()) {
    if (t.id() == job.id() + "/" + suffix) return &t;
  }
  return nullptr;
}

}  // namespace musafarm::e2e
