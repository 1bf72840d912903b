// End to end for job inputs (issue 17, "submit from a laptop"): the real CLI
// packs and uploads a directory outside the repository, the real coordinator
// keeps it in its content store, and a real agent with a private dockerd
// fetches the tree by digest and builds from it. One farm serves every case.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "content/packer.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"
#include "tests/faults/tcp_proxy.h"
#include "tests/support/private_dockerd.h"

namespace musafarm::e2e {
namespace {

namespace fs = std::filesystem;

const std::string kSource = MF_SOURCE_DIR;

// The build checks what arrived: the files the .dockerignore leaves in, with
// their executable bit and symbolic link, and not the excluded ones.
constexpr char kDockerfile[] = R"df(FROM musafarm/busybox:test
COPY . /ctx
RUN test -x /ctx/bin/run.sh && test ! -x /ctx/data/hello.txt \
 && test "$(cat /ctx/data/hello.txt)" = "hello from the laptop" \
 && test "$(readlink /ctx/latest)" = "data/hello.txt" \
 && test ! -e /ctx/secret.key && test ! -e /ctx/build && test ! -e /ctx/.git
)df";

class InputsTest : public ::testing::Test {
 protected:
  static void StartFarm() {
    const std::string missing = test_support::PrivateDockerd::MissingTools(kSource);
    ASSERT_EQ(missing, "") << "run scripts/docker/install.sh";
    const std::string error = dockerd_.Start(
        kSource, absl::StrCat(fs::temp_directory_path().string(), "/musafarm-inputs-dockerd-",
                              ::getpid()),
        "musafarm/busybox:test");
    ASSERT_EQ(error, "");
    // A limit the 200 MB tree fits in and a sparse 2 GiB file does not.
    farm_->StartCoordinator({"--blob-store-bytes", "1G"});
    // The agent's connection and the CLI's each through a proxy that counts
    // bytes (tests/faults/tcp_proxy.h).
    auto agent_proxy = faults::TcpProxy::Start(farm_->port());
    ASSERT_TRUE(agent_proxy.ok()) << agent_proxy.status();
    agent_proxy_ = agent_proxy->release();
    auto cli_proxy = faults::TcpProxy::Start(farm_->port());
    ASSERT_TRUE(cli_proxy.ok()) << cli_proxy.status();
    cli_proxy_ = cli_proxy->release();
    // BuildKit: the daemon reads only what the Dockerfile copies, not the
    // whole 200 MB context.
    agent_ = farm_->StartAgentVia(agent_proxy_->address(), "agent-a", {}, 2,
                                  {"--docker", "--buildkit", "--docker-host", dockerd_.host()});
    ASSERT_TRUE(WaitFor([] { return farm_->Agents().size() == 1; }));
    ready_ = true;
  }

  static void TearDownTestSuite() {
    if (farm_ == nullptr) return;
    delete farm_;
    farm_ = nullptr;
    delete agent_proxy_;
    delete cli_proxy_;
    dockerd_.Stop();
  }

  void SetUp() override {
    if (farm_ == nullptr) {
      farm_ = new Farm();
      StartFarm();
    }
    ASSERT_TRUE(ready_) << "the shared farm did not start (see the first test)";
  }

  // A working copy outside the repository: the farm's temporary directory.
  static std::string MakeWorkingCopy(const std::string& name) {
    const fs::path dir = fs::path(farm_->dir()) / name;
    fs::create_directories(dir / "bin");
    fs::create_directories(dir / "data");
    fs::create_directories(dir / "build");
    fs::create_directories(dir / ".git");
    std::ofstream(dir / "Dockerfile") << kDockerfile;
    std::ofstream(dir / ".dockerignore") << "secret.key\nbuild\n";
    std::ofstream(dir / "bin" / "run.sh") << "#!/bin/sh\necho run\n";
    ::chmod((dir / "bin" / "run.sh").c_str(), 0755);
    std::ofstream(dir / "data" / "hello.txt") << "hello from the laptop";
    fs::create_symlink("data/hello.txt", dir / "latest");
    std::ofstream(dir / "secret.key") << "not for the farm";
    std::ofstream(dir / "build" / "out.o") << "object";
    std::ofstream(dir / ".git" / "HEAD") << "ref: refs/heads/main\n";
    return dir.string();
  }

  static std::string Pipeline(const std::string& tag) {
    return farm_->WritePipeline(absl::StrCat(tag, ".yaml"), absl::StrCat(R"(name: laptop
stages:
  - name: image
    docker_build:
      context: input:src
      network: none
      tags: [musafarm/laptop:)", tag, R"(]
)"));
  }

  // "submitted job 7 (1 tasks)" -> "7".
  static std::string JobId(const std::string& out) {
    const size_t at = out.find("submitted job ");
    if (at == std::string::npos) return "";
    const size_t start = at + 14;
    return out.substr(start, out.find(' ', start) - start);
  }

  static int FetchLines(const std::string& what) {
    const std::string log = agent_->Output();
    int n = 0;
    for (size_t at = log.find(what); at != std::string::npos; at = log.find(what, at + 1)) ++n;
    return n;
  }

  // `musafarm --coordinator <the CLI's proxy> ARGS...`, started.
  static std::unique_ptr<Process> CliViaProxy(const std::vector<std::string>& args,
                                              const std::string& log) {
    std::vector<std::string> argv = {MF_CLI_BIN, "--coordinator", cli_proxy_->address(),
                                     "--insecure"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto p = Process::Start(argv, farm_->dir() + "/" + log);
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? *std::move(p) : nullptr;
  }

  // Runs it to the end; the exit code, with its output in *out.
  static int RunViaProxy(const std::vector<std::string>& args, const std::string& log,
                         std::string* out) {
    std::unique_ptr<Process> p = CliViaProxy(args, log);
    if (p == nullptr) return -1;
    const int code = p->Wait(absl::Seconds(300));
    *out = p->Output();
    return code;
  }

  // `git -C dir ARGS...` (test plumbing, argv only); its output.
  static std::string Git(const std::string& dir, std::vector<std::string> args) {
    args.insert(args.begin(), {"/usr/bin/git", "-C", dir, "-c", "user.name=t", "-c",
                               "user.email=t@example.com"});
    static int n = 0;
    std::unique_ptr<Process> p =
        *Process::Start(args, absl::StrCat(farm_->dir(), "/git-", n++, ".log"));
    EXPECT_EQ(p->Wait(absl::Seconds(30)), 0) << p->Output();
    return std::string(absl::StripAsciiWhitespace(p->Output()));
  }

  // `git daemon` on 127.0.0.1 serving the repositories under `base`; its port
  // in *port. It cannot bind port 0: a few ports derived from our pid.
  static std::unique_ptr<Process> GitDaemon(const std::string& base, int* port) {
    static int attempt = 0;
    for (int i = 0; i < 20; ++i) {
      *port = 30000 + (::getpid() * 7 + (attempt + i) * 131) % 20000;
      auto p = Process::Start({"/usr/lib/git-core/git-daemon", "--verbose", "--reuseaddr",
                               "--listen=127.0.0.1", absl::StrCat("--port=", *port),
                               "--base-path=" + base, "--export-all", base},
                              absl::StrCat(farm_->dir(), "/git-daemon-", attempt + i, ".log"));
      if (!p.ok()) return nullptr;
      WaitFor([&] { return absl::StrContains((*p)->Output(), "Ready to rumble") || !(*p)->Running(); });
      if (absl::StrContains((*p)->Output(), "Ready to rumble")) {
        attempt += i + 1;
        return *std::move(p);
      }
    }
    return nullptr;
  }

  // A served torch_musa repository whose annotated tags T1 and T2 say their
  // name in VERSION, with a later commit on main; the commits of T1 and T2.
  struct ServedTorchMusa {
    std::unique_ptr<Process> daemon;
    std::string url;  // git://127.0.0.1:PORT/torch_musa.git
    std::string t1, t2;
  };

  static ServedTorchMusa ServeTorchMusa(const std::string& dir) {
    ServedTorchMusa s;
    const std::string repo = dir + "/torch_musa.git";
    fs::create_directories(repo);
    Git(repo, {"init", "--quiet", "-b", "main"});
    for (const char* tag : {"T1", "T2"}) {
      std::ofstream(repo + "/VERSION") << "torch_musa " << tag << "\n";
      Git(repo, {"add", "-A"});
      Git(repo, {"commit", "--quiet", "-m", tag});
      Git(repo, {"tag", "-a", tag, "-m", tag});  // annotated, as releases are
    }
    std::ofstream(repo + "/VERSION") << "torch_musa main, after T2\n";
    Git(repo, {"commit", "--quiet", "-am", "later"});
    s.t1 = Git(repo, {"rev-parse", "T1^{commit}"});
    s.t2 = Git(repo, {"rev-parse", "T2^{commit}"});
    int port = 0;
    s.daemon = GitDaemon(dir, &port);
    s.url = absl::StrCat("git://127.0.0.1:", port, "/torch_musa.git");
    return s;
  }

  // The largest partial upload the coordinator holds, in bytes.
  static int64_t LargestPartial() {
    int64_t largest = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(farm_->data_dir() + "/blobs/partial", ec)) {
      largest = std::max<int64_t>(largest, static_cast<int64_t>(e.file_size(ec)));
    }
    return largest;
  }

  static Farm* farm_;
  static faults::TcpProxy* agent_proxy_;
  static faults::TcpProxy* cli_proxy_;
  static Process* agent_;
  static test_support::PrivateDockerd dockerd_;
  static bool ready_;
};

Farm* InputsTest::farm_ = nullptr;
faults::TcpProxy* InputsTest::agent_proxy_ = nullptr;
faults::TcpProxy* InputsTest::cli_proxy_ = nullptr;
Process* InputsTest::agent_ = nullptr;
test_support::PrivateDockerd InputsTest::dockerd_;
bool InputsTest::ready_ = false;

TEST_F(InputsTest, ContextDirectoryIsUploadedRecordedAndBuiltOnAnAgentWithoutIt) {
  const std::string dir = MakeWorkingCopy("laptop-copy");
  CliResult r = farm_->Cli({"submit", Pipeline("one"), "--context", "src=" + dir, "--watch"},
                           absl::Seconds(180));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << farm_->Cli({"logs", JobId(r.out) + "/image"}).out;
  EXPECT_TRUE(absl::StrContains(r.err, "context src: 4 files")) << r.err;
  // The job records the input: its tree, where it came from, what it holds.
  absl::StatusOr<v1::Job> job = farm_->Job(JobId(r.out));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->inputs_size(), 1);
  EXPECT_EQ(job->inputs(0).name(), "src");
  EXPECT_EQ(job->inputs(0).source(), "dir:" + dir);
  EXPECT_EQ(job->inputs(0).files(), 4);  // Dockerfile, .dockerignore, run.sh, hello.txt
  EXPECT_EQ(job->inputs(0).tree().sha256().size(), 64u);
  EXPECT_EQ(job->tasks(0).spec().run().docker_build().context_tree().sha256(),
            job->inputs(0).tree().sha256());
  ASSERT_TRUE(WaitFor([] { return FetchLines("blob(s)") >= 1; }));

  // The same tree again: the CLI sends nothing and the agent fetches nothing.
  r = farm_->Cli({"submit", Pipeline("two"), "--context", "src=" + dir, "--watch"},
                 absl::Seconds(180));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "0 B of 0 B sent")) << r.err;
  ASSERT_TRUE(WaitFor([] { return FetchLines("blob(s)") >= 2; }));
  EXPECT_EQ(FetchLines(" 0 blob(s) (0 bytes) fetched"), 1) << agent_->Output();
}

// Issue 17, item 1: a pipeline that declares its input builds from the
// directory it names, found from the pipeline file's directory (the CLI runs
// elsewhere), with no --context; `--context` before the file replaces it.
TEST_F(InputsTest, ADeclaredInputIsSentFromThePipelinesDirectoryAndContextReplacesIt) {
  MakeWorkingCopy("declared-copy");
  const std::string other = MakeWorkingCopy("declared-other");
  const std::string file = farm_->WritePipeline("declared.yaml", R"(name: declared
inputs:
  src: {path: declared-copy, ignore: .dockerignore}
stages:
  - name: image
    docker_build:
      context: input:src
      network: none
      tags: [musafarm/laptop:declared]
)");
  ASSERT_NE(fs::current_path(), fs::path(farm_->dir()));
  CliResult r = farm_->Cli({"submit", file, "--watch"}, absl::Seconds(180));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << farm_->Cli({"logs", JobId(r.out) + "/image"}).out;
  absl::StatusOr<v1::Job> job = farm_->Job(JobId(r.out));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->inputs_size(), 1);
  EXPECT_EQ(job->inputs(0).source(), "dir:" + farm_->dir() + "/declared-copy");
  EXPECT_EQ(job->inputs(0).files(), 4);  // secret.key and build/ left out by its .dockerignore
  r = farm_->Cli({"submit", "--context", "src=" + other, file, "--watch"}, absl::Seconds(180));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  job = farm_->Job(JobId(r.out));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->inputs_size(), 1);
  EXPECT_EQ(job->inputs(0).source(), "dir:" + other);
  // A stage naming an input the file does not declare, and a declared path
  // that is not there, are refused with the file, the input and the reason.
  const std::string typo = farm_->WritePipeline("typo.yaml", R"(name: typo
inputs:
  src: {path: nowhere}
stages:
  - name: image
    docker_build: {context: "input:scr", tags: [musafarm/laptop:typo]}
)");
  r = farm_->Cli({"submit", typo});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, typo + ":6:29: stages[0].docker_build.context: unknown "
                                               "input 'scr' (inputs are: src)"))
      << r.err;
  r = farm_->Cli({"submit", farm_->WritePipeline("gone.yaml", R"(name: gone
inputs:
  src: {path: nowhere}
stages:
  - name: image
    docker_build: {context: "input:src", tags: [musafarm/laptop:gone]}
)")});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "gone.yaml:3:3: inputs.src: path 'nowhere' is " +
                                           farm_->dir() + "/nowhere"))
      << r.err;
}

TEST_F(InputsTest, SubmissionsThatCannotBeBuiltAreRefusedWithTheReason) {
  // A stage naming an input the submission lacks.
  CliResult r = farm_->Cli({"submit", Pipeline("none")});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "names an input this submission does not carry")) << r.err;
  // A symbolic link out of the directory: refused before anything is sent.
  const std::string dir = MakeWorkingCopy("escape-copy");
  fs::create_symlink("../../etc/passwd", fs::path(dir) / "data" / "passwd");
  r = farm_->Cli({"submit", Pipeline("escape"), "--context", "src=" + dir});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "data/passwd: symbolic link to '../../etc/passwd' points outside"))
      << r.err;
  // Not a directory.
  r = farm_->Cli({"submit", Pipeline("missing"), "--context", "src=" + dir + "/nowhere"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "--context src: " + dir + "/nowhere")) << r.err;
}

// The acceptance figures of issue 17 with a stand-in for a torch_musa working
// copy: 3,000 small files in 30 directories and one 200 MB file (sparse: it
// costs no disk to make). Every figure is the byte count of a proxy.
TEST_F(InputsTest, AcceptanceFiguresThroughCountingProxies) {
  constexpr int64_t kBig = 200 << 20;
  constexpr int64_t kChunk = 1 << 20;
  constexpr int64_t kSlack = 64 << 10;
  const fs::path dir = fs::path(farm_->dir()) / "torch_musa-copy";
  for (int d = 0; d < 30; ++d) {
    const fs::path sub = dir / "src" / absl::StrCat("mod", d);
    fs::create_directories(sub);
    for (int f = 0; f < 100; ++f) {
      std::ofstream(sub / absl::StrCat("file", f, ".py")) << "# module " << d << " file " << f << "\n";
    }
  }
  fs::create_directories(dir / "weights");
  {
    const int fd = ::open((dir / "weights" / "big.bin").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, kBig), 0);
    ::close(fd);
  }
  std::ofstream(dir / "Dockerfile") << "FROM musafarm/busybox:test\nCOPY src/mod7/file3.py /\n"
                                      "RUN grep -q 'module 7 file 3' /file3.py\n";
  absl::StatusOr<content::PackedTree> packed = content::PackDirectory(dir.string());
  ASSERT_TRUE(packed.ok()) << packed.status();
  int64_t small_bytes = 0, all_bytes = 0;
  for (const auto& [sha, blob] : packed->blobs) {
    all_bytes += blob.digest.size_bytes();
    if (!blob.path.empty() && blob.digest.size_bytes() != kBig) small_bytes += blob.digest.size_bytes();
  }
  const std::string src = "src=" + dir.string();

  // 1. Killed after at least 100 MB were acknowledged (held on the
  // coordinator's disk). The proxy is blackholed first so that nothing moves
  // between the check and the kill.
  std::unique_ptr<Process> killed = CliViaProxy({"submit", Pipeline("big1"), "--context", src}, "big1.log");
  ASSERT_NE(killed, nullptr);
  ASSERT_TRUE(WaitFor([] { return LargestPartial() >= (100 << 20); }, absl::Seconds(120)))
      << killed->Output();
  cli_proxy_->Blackhole();
  killed->Signal(SIGKILL);
  killed->Wait(absl::Seconds(10));
  cli_proxy_->Heal();
  ASSERT_TRUE(WaitFor([] { return cli_proxy_->open() == 0; }));
  const int64_t held = LargestPartial();
  ASSERT_GE(held, 100 << 20);
  ASSERT_LT(held, kBig);

  // 2. The next submit forwards at most the rest plus one chunk, and the
  // job builds on an agent that has no copy of the sources.
  uint64_t before = cli_proxy_->bytes_to_upstream();
  uint64_t agent_before = agent_proxy_->bytes_to_client();
  std::string out;
  ASSERT_EQ(RunViaProxy({"submit", Pipeline("big2"), "--context", src, "--watch"}, "big2.log", &out), 0)
      << out;
  const int64_t rest = all_bytes - small_bytes - held;
  const int64_t resumed = static_cast<int64_t>(cli_proxy_->bytes_to_upstream() - before);
  std::cout << "[figure] resume after kill at " << held << " bytes held: forwarded " << resumed
            << " bytes; the rest was " << rest << "\n";
  EXPECT_LE(resumed, rest + kChunk);
  EXPECT_GE(static_cast<int64_t>(agent_proxy_->bytes_to_client() - agent_before), kBig);

  // 3. One small file changed: at most that file plus 64 KiB go out, and the
  // agent fetches about as little.
  std::ofstream(dir / "src" / "mod12" / "file34.py") << "# module 12 file 34, edited\n";
  const int64_t edited = static_cast<int64_t>(fs::file_size(dir / "src" / "mod12" / "file34.py"));
  before = cli_proxy_->bytes_to_upstream();
  agent_before = agent_proxy_->bytes_to_client();
  ASSERT_EQ(RunViaProxy({"submit", Pipeline("big3"), "--context", src, "--watch"}, "big3.log", &out), 0)
      << out;
  const int64_t changed = static_cast<int64_t>(cli_proxy_->bytes_to_upstream() - before);
  const int64_t agent_changed = static_cast<int64_t>(agent_proxy_->bytes_to_client() - agent_before);
  std::cout << "[figure] one " << edited << "-byte file changed: CLI forwarded " << changed
            << " bytes, the agent received " << agent_changed << "\n";
  EXPECT_LE(changed, edited + kSlack);
  EXPECT_LE(agent_changed, edited + kSlack);

  // 4. The same tree again: the agent holds it and fetches nothing (its
  // connection carries the assignment and acknowledgements only).
  agent_before = agent_proxy_->bytes_to_client();
  const int fetches_before = FetchLines(" 0 blob(s) (0 bytes) fetched");
  ASSERT_EQ(RunViaProxy({"submit", Pipeline("big4"), "--context", src, "--watch"}, "big4.log", &out), 0)
      << out;
  ASSERT_TRUE(WaitFor([&] { return FetchLines(" 0 blob(s) (0 bytes) fetched") > fetches_before; }));
  const int64_t agent_same = static_cast<int64_t>(agent_proxy_->bytes_to_client() - agent_before);
  std::cout << "[figure] same tree again: the agent received " << agent_same << " bytes\n";
  EXPECT_LE(agent_same, kSlack);

  // 5. Over the coordinator's limit (1 GiB here): refused before upload,
  // with the limit named; nothing but the limits call goes out.
  const fs::path huge = fs::path(farm_->dir()) / "huge-copy";
  fs::create_directories(huge);
  {
    const int fd = ::open((huge / "huge.bin").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, int64_t{2} << 30), 0);
    ::close(fd);
  }
  before = cli_proxy_->bytes_to_upstream();
  EXPECT_EQ(RunViaProxy({"submit", Pipeline("huge"), "--context", "src=" + huge.string()}, "huge.log", &out),
            2)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "over the limit of 1 GiB (1073741824 bytes, the coordinator's "
                                     "--blob-store-bytes)"))
      << out;
  EXPECT_LE(static_cast<int64_t>(cli_proxy_->bytes_to_upstream() - before), kSlack);
}

// Git inputs, resolved on the coordinator: from `git daemon` on 127.0.0.1 and
// from a file:// repository. The job records the commit; a new commit on the
// branch gives the next run a new tree.
TEST_F(InputsTest, GitContextIsResolvedToACommitAndFollowsTheBranch) {
  const std::string base = farm_->dir() + "/git-served";
  const std::string repo = base + "/laptop.git";
  fs::create_directories(repo);
  auto git = [&](std::vector<std::string> args) { return Git(repo, std::move(args)); };
  git({"init", "--quiet", "-b", "main"});
  std::ofstream(repo + "/Dockerfile") << "FROM musafarm/busybox:test\nCOPY msg.txt /\nRUN cat /msg.txt\n";
  std::ofstream(repo + "/msg.txt") << "first\n";
  git({"add", "-A"});
  git({"commit", "--quiet", "-m", "first"});
  const std::string first = git({"rev-parse", "HEAD"});

  int port = 0;
  std::unique_ptr<Process> daemon = GitDaemon(base, &port);
  ASSERT_NE(daemon, nullptr) << "git daemon did not start";
  const std::string url = absl::StrCat("git://127.0.0.1:", port, "/laptop.git#main");

  CliResult r = farm_->Cli({"submit", Pipeline("git1"), "--context", "src=" + url, "--watch"},
                           absl::Seconds(180));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  absl::StatusOr<v1::Job> job1 = farm_->Job(JobId(r.out));
  ASSERT_TRUE(job1.ok()) << job1.status();
  ASSERT_EQ(job1->inputs_size(), 1);
  EXPECT_EQ(job1->inputs(0).commit(), first);
  EXPECT_EQ(job1->inputs(0).source(), url);
  EXPECT_EQ(job1->inputs(0).files(), 2);

  std::ofstream(repo + "/msg.txt") << "second\n";
  git({"commit", "--quiet", "-am", "second"});
  const std::string second = git({"rev-parse", "HEAD"});
  r = farm_->Cli({"submit", Pipeline("git2"), "--context", "src=" + url, "--watch"}, absl::Seconds(180));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  absl::StatusOr<v1::Job> job2 = farm_->Job(JobId(r.out));
  ASSERT_TRUE(job2.ok()) << job2.status();
  EXPECT_EQ(job2->inputs(0).commit(), second);
  EXPECT_NE(job2->inputs(0).tree().sha256(), job1->inputs(0).tree().sha256());
  // status shows it.
  CliResult status = farm_->Cli({"status", job2->id()});
  EXPECT_TRUE(absl::StrContains(status.out, "input src: " + url + " at " + second.substr(0, 12)))
      << status.out;

  // The same repository as a file:// URL: the same commit, the same tree.
  r = farm_->Cli({"submit", Pipeline("git3"), "--context", "src=git+file://" + repo + "#main", "--watch"},
                 absl::Seconds(180));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  absl::StatusOr<v1::Job> job3 = farm_->Job(JobId(r.out));
  ASSERT_TRUE(job3.ok()) << job3.status();
  EXPECT_EQ(job3->inputs(0).commit(), second);
  EXPECT_EQ(job3->inputs(0).tree().sha256(), job2->inputs(0).tree().sha256());

  // A branch that does not exist: refused at submit, naming it.
  r = farm_->Cli({"submit", Pipeline("git4"), "--context", "src=git+file://" + repo + "#nope"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.err, "no ref 'nope'")) << r.err;
}

}  // namespace
}  // namespace musafarm::e2e

namespace musafarm::e2e {
namespace {

// Issue 18, item 3: `--torch_musa_tag T2` builds T2 of a torch_musa
// repository served by `git daemon` on 127.0.0.1 (a stand-in whose VERSION
// says its tag), joined with the fixture's Dockerfiles as the build context;
// the job records T2's commit. `--context torch_musa=DIR` builds DIR instead,
// with a note that the tag then selects nothing.
TEST_F(InputsTest, TorchMusaTagBuildsThatTagFromAGitDaemonAndTheJobRecordsItsCommit) {
  ServedTorchMusa torch_musa = ServeTorchMusa(farm_->dir() + "/torch_musa-served");
  ASSERT_NE(torch_musa.daemon, nullptr) << "git daemon did not start";
  const std::string served = torch_musa.url;
  const std::string t2 = torch_musa.t2;
  const std::string file = farm_->WritePipeline(
      "torch_musa_tag.yaml",
      absl::StrReplaceAll(ReadFile(kSource + "/tests/fixtures/docker/torch_musa_tag.yaml.in"),
                          {{"@CONTEXT@", kSource + "/tests/fixtures/docker"},
                           {"@TORCH_MUSA_REPO@", served}}));

  CliResult r = farm_->Cli({"submit", file, "--torch_musa_tag", "T2", "--watch"},
                           absl::Seconds(180));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << farm_->Cli({"logs", JobId(r.out) + "/dev"}).out;
  absl::StatusOr<v1::Job> job = farm_->Job(JobId(r.out));
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->inputs_size(), 3);
  EXPECT_EQ(job->inputs(1).name(), "torch_musa");
  EXPECT_EQ(job->inputs(1).source(), served + "#T2");
  EXPECT_EQ(job->inputs(1).commit(), t2);
  EXPECT_EQ(job->inputs(2).name(), "context");
  EXPECT_EQ(job->inputs(2).source(), "join:.=fixture,torch_musa=torch_musa");
  EXPECT_EQ(job->params().at("torch_musa_tag"), "T2");
  CliResult shown = farm_->Cli({"logs", job->id() + "/show"});
  EXPECT_TRUE(absl::StrContains(shown.out, "torch_musa T2")) << shown.out;
  CliResult status = farm_->Cli({"status", job->id()});
  EXPECT_TRUE(absl::StrContains(status.out, "input torch_musa: " + served + "#T2 at " +
                                                t2.substr(0, 12)))
      << status.out;

  // A working copy instead: built as it is; the tag only labels the build.
  const fs::path copy = fs::path(farm_->dir()) / "torch_musa-copy-wc";
  fs::create_directories(copy);
  std::ofstream(copy / "VERSION") << "torch_musa from my working copy\n";
  r = farm_->Cli({"submit", file, "--context", "torch_musa=" + copy.string(), "--torch_musa_tag",
                  "T1", "--watch"},
                 absl::Seconds(180));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "note: --context torch_musa replaces the pipeline's git "
                                       "input torch_musa: that directory is built, and "
                                       "torch_musa_tag=T1 selects no source"))
      << r.err;
  job = farm_->Job(JobId(r.out));
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->inputs(1).source(), "dir:" + copy.string());
  EXPECT_EQ(job->inputs(1).commit(), "");
  shown = farm_->Cli({"logs", job->id() + "/show"});
  EXPECT_TRUE(absl::StrContains(shown.out, "torch_musa from my working copy")) << shown.out;

  // A tag the repository lacks: refused at submit, naming it.
  r = farm_->Cli({"submit", file, "--torch_musa_tag", "T9"});
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "input 'torch_musa' (" + served + "#T9): no ref 'T9'"))
      << r.err;
}

// Issue 18, per-cell git refs: a two-recipe job whose second recipe pins
// another tag. Each cell's image holds its own tag's VERSION; the job records
// both resolved inputs, and each cell's build names its own.
TEST_F(InputsTest, EachRecipeBuildsTheTorchMusaTagItPins) {
  ServedTorchMusa served = ServeTorchMusa(farm_->dir() + "/recipes-served");
  ASSERT_NE(served.daemon, nullptr) << "git daemon did not start";
  const std::string file = farm_->WritePipeline(
      "torch_musa_recipes.yaml",
      absl::StrReplaceAll(ReadFile(kSource + "/tests/fixtures/docker/torch_musa_recipes.yaml.in"),
                          {{"@CONTEXT@", kSource + "/tests/fixtures/docker"},
                           {"@TORCH_MUSA_REPO@", served.url}}));
  CliResult r = farm_->Cli({"submit", file, "--watch"}, absl::Seconds(180));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err << farm_->Cli({"logs", JobId(r.out) + "/r2/dev"}).out;
  absl::StatusOr<v1::Job> job = farm_->Job(JobId(r.out));
  ASSERT_TRUE(job.ok()) << job.status();
  std::map<std::string, v1::JobInput> inputs;
  for (const v1::JobInput& in : job->inputs()) inputs[in.name()] = in;
  ASSERT_EQ(inputs.size(), 5u) << job->DebugString();
  EXPECT_EQ(inputs["torch_musa"].source(), served.url + "#T1");
  EXPECT_EQ(inputs["torch_musa"].commit(), served.t1);
  EXPECT_EQ(inputs["torch_musa@recipe=r2"].source(), served.url + "#T2");
  EXPECT_EQ(inputs["torch_musa@recipe=r2"].commit(), served.t2);
  EXPECT_EQ(inputs["context@recipe=r2"].source(),
            "join:.=fixture,torch_musa=torch_musa@recipe=r2");
  for (const v1::Task& t : job->tasks()) {
    if (t.spec().stage() != "dev") continue;
    const std::string want = t.spec().cell(0).value() == "r1" ? "context" : "context@recipe=r2";
    EXPECT_EQ(t.spec().run().docker_build().context_input(), want) << t.id();
    EXPECT_EQ(t.spec().run().docker_build().context_tree().sha256(), inputs[want].tree().sha256());
  }
  EXPECT_TRUE(absl::StrContains(farm_->Cli({"logs", job->id() + "/r1/show"}).out, "torch_musa T1"));
  EXPECT_TRUE(absl::StrContains(farm_->Cli({"logs", job->id() + "/r2/show"}).out, "torch_musa T2"));
  CliResult status = farm_->Cli({"status", job->id()});
  EXPECT_TRUE(absl::StrContains(status.out, "input torch_musa@recipe=r2: " + served.url + "#T2 at " +
                                                served.t2.substr(0, 12)))
      << status.out;
}

// Issue 17, item 3 and issue 18 on the real pipelines/torch_musa.yaml: the
// agent has no Dockerfiles on its disk (its work directory is outside the
// repository, and no /usr/share/musafarm is read), torch_musa_repo is the
// served repository. The real Dockerfiles cannot build here (no Ubuntu image,
// no internet, no MUSA packages): the observable point is the base task of a
// dev build with -s musafarm/busybox:test. The coordinator recorded the
// dockerfiles tree (packed from the repository's dockerfiles/), torch_musa at
// T1 and their join; the agent fetched and linked that joined tree into the
// task's context; and the build read dockerfile.base from it and copied its
// common/ scripts (it then fails at the first RUN: busybox has no bash).
// Not exercised: anything past that step.
TEST_F(InputsTest, TheRealPipelineSendsItsDockerfilesAndTorchMusaToAnAgentWithoutThem) {
  ServedTorchMusa served = ServeTorchMusa(farm_->dir() + "/real-served");
  ASSERT_NE(served.daemon, nullptr) << "git daemon did not start";
  CliResult r = farm_->Cli({"submit", kSource + "/pipelines/torch_musa.yaml", "-v", "3.9",
                            "--variant", "dev", "-s", "musafarm/busybox:test", "--torch_musa_tag",
                            "T1", "--param", "torch_musa_repo=" + served.url, "--watch"},
                           absl::Seconds(240));
  const std::string id = JobId(r.out);
  ASSERT_FALSE(id.empty()) << r.out << r.err;
  absl::StatusOr<v1::Job> job = farm_->Job(id);
  ASSERT_TRUE(job.ok()) << job.status();
  std::map<std::string, v1::JobInput> inputs;
  for (const v1::JobInput& in : job->inputs()) inputs[in.name()] = in;
  ASSERT_EQ(inputs.size(), 3u) << job->DebugString();
  absl::StatusOr<content::PackedTree> dockerfiles = content::PackDirectory(kSource + "/dockerfiles");
  ASSERT_TRUE(dockerfiles.ok()) << dockerfiles.status();
  EXPECT_EQ(inputs["dockerfiles"].source(), "dir:" + kSource + "/dockerfiles");
  EXPECT_EQ(inputs["dockerfiles"].tree().sha256(), dockerfiles->root.sha256());
  EXPECT_EQ(inputs["torch_musa"].source(), served.url + "#T1");
  EXPECT_EQ(inputs["torch_musa"].commit(), served.t1);
  EXPECT_EQ(inputs["context"].files(), inputs["dockerfiles"].files() + 1);  // + torch_musa/VERSION
  const std::string base = id + "/dev-3.9-any-dev1.5.1/base";
  const v1::Task* task = nullptr;
  for (const v1::Task& t : job->tasks()) task = t.id() == base ? &t : task;
  ASSERT_NE(task, nullptr) << job->DebugString();
  EXPECT_EQ(task->spec().run().docker_build().context_input(), "context");
  EXPECT_EQ(task->spec().run().docker_build().dockerfile(), "ubuntu/dockerfile.base");
  // The agent linked the joined tree into the task's context.
  const std::string tree = inputs["context"].tree().sha256().substr(0, 12);
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(agent_->Output(), absl::StrCat("input tree sha256:", tree, " in "));
  })) << agent_->Output();
  EXPECT_TRUE(absl::StrContains(agent_->Output(),
                                absl::StrCat("/context: ", inputs["context"].files(), " files")))
      << agent_->Output();
  // The build read dockerfile.base from it and copied common/ in.
  const std::string log = farm_->Cli({"logs", base}).out;
  EXPECT_TRUE(absl::StrContains(log, "COPY common/install_base_deps.sh")) << log;
  EXPECT_FALSE(absl::StrContains(log, "failed to compute cache key")) << log;  // a COPY's file missing
  EXPECT_TRUE(absl::StrContains(log, "/bin/bash")) << log;  // the RUN after it: no bash in busybox
}

}  // namespace
}  // namespace musafarm::e2e
