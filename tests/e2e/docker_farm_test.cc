// End-to-end with real Docker: two private dockerd instances (one per agent),
// a real registry on loopback, the real coordinator, agents and CLI. Runs the
// fixture matrix of tests/fixtures/docker (15 tasks) and cancels builds and
// runs mid-way.
#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "pugixml.hpp"
#include "sqlite3.h"
#include "tests/e2e/docker_rig.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

const std::string kFixture = FixtureDir();
constexpr char kDockerCli[] = "/usr/bin/docker";

// Runs a command (argv, no shell) and returns its exit code and output.
CliResult RunCmd(const std::vector<std::string>& argv, const std::string& log) {
  std::filesystem::remove(log);  // Process appends: start from an empty file
  auto p = Process::Start(argv, log);
  CliResult r;
  if (!p.ok()) return r;
  r.exit_code = (*p)->Wait(absl::Seconds(120));
  r.out = ReadFile(log);
  return r;
}

class DockerFarmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(docker_.Start(farm_.dir(), 2), "");
    registry_ = docker_.registry();
    hosts_ = {docker_.host(0), docker_.host(1)};
    // Retention may delete the farm registry's tags; a pass every second
    // (only pipelines with `retention:` expire in this suite).
    farm_.StartCoordinator({"--registry", registry_, "--retention-interval", "1s"});
    // Agents outside the repository, given no path into it: the fixture's
    // Dockerfiles reach them as a job input (issue 17, item 3).
    farm_.set_agent_cwd(farm_.dir());
    // One declared GPU each (no detector here): test stages need one, so at
    // most one test runs per agent at a time.
    farm_.StartAgent("agent-a", {"role=base"}, 3, docker_.AgentFlags(0));
    farm_.StartAgent("agent-b", {"role=dev"}, 3, docker_.AgentFlags(1));
    ASSERT_TRUE(WaitFor([&] { return farm_.Agents().size() == 2; }));
  }

  std::string Pipeline() { return farm_.WritePipeline("fixture.yaml", docker_.FixturePipeline()); }

  // Containers on a daemon, all or only this farm's.
  std::string Containers(const std::string& host) {
    return RunCmd({kDockerCli, "-H", host, "ps", "-a", "--format", "{{.Names}} {{.Labels}}"},
                  farm_.dir() + "/ps.log")
        .out;
  }

  // Docker CLI processes still running on this machine for our daemons.
  int DockerCliProcesses() {
    int n = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string cmdline = ReadFile(entry.path().string() + "/cmdline");
      if (!absl::StartsWith(cmdline, kDockerCli)) continue;
      std::string env = ReadFile(entry.path().string() + "/environ");
      for (const std::string& host : hosts_) n += absl::StrContains(env, host) ? 1 : 0;
    }
    return n;
  }

  Farm farm_;
  DockerRig docker_;  // stopped before the farm's agents are
  std::string registry_;
  std::vector<std::string> hosts_;
};

TEST_F(DockerFarmTest, FixtureMatrixBuildsPushesPullsRunsAndReportsTests) {
  // Python 3.9's dev unit suite has a failing test on request: that cell fails.
  CliResult r = farm_.Cli({"submit", Pipeline(), "--param", "failing_python=3.9", "--watch"},
                          absl::Seconds(300));
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  auto job = farm_.Job("1");
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->tasks_size(), 15);
  // The fixture travelled as input `fixture`, and nothing the agents were
  // given, by flag, working directory or task, points into the repository.
  ASSERT_EQ(job->inputs_size(), 1);
  EXPECT_EQ(job->inputs(0).name(), "fixture");
  EXPECT_EQ(job->inputs(0).source(), "dir:" + kFixture);
  for (const v1::Task& t : job->tasks()) {
    EXPECT_FALSE(absl::StrContains(t.spec().DebugString(), MF_SOURCE_DIR)) << t.spec().DebugString();
    if (t.spec().run().has_docker_build()) {
      EXPECT_EQ(t.spec().run().docker_build().context_input(), "fixture");
      EXPECT_EQ(t.spec().run().docker_build().context(), "");
    }
  }
  int agents = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string cmdline = ReadFile(entry.path().string() + "/cmdline");
    if (!absl::StartsWith(cmdline, MF_AGENT_BIN) || !absl::StrContains(cmdline, farm_.dir())) {
      continue;  // not one of this farm's agents
    }
    ++agents;
    // Its flags (the binary itself is in the build tree).
    const std::string flags = cmdline.substr(cmdline.find('\0') + 1);
    EXPECT_FALSE(absl::StrContains(flags, MF_SOURCE_DIR)) << flags;
    std::error_code ec;
    EXPECT_EQ(std::filesystem::read_symlink(entry.path() / "cwd", ec).string(), farm_.dir());
  }
  EXPECT_EQ(agents, 2);
  for (const char* py : {"3.8", "3.9", "3.10"}) {
    const v1::Task* base = FindTask(*job, absl::StrCat("dev-", py, "/base"));
    const v1::Task* dev = FindTask(*job, absl::StrCat("dev-", py, "/dev"));
    ASSERT_NE(base, nullptr);
    ASSERT_NE(dev, nullptr);
    EXPECT_EQ(base->state(), v1::TASK_STATE_SUCCEEDED) << base->reason();
    EXPECT_EQ(dev->state(), v1::TASK_STATE_SUCCEEDED) << dev->reason();
    EXPECT_GE(dev->started_us(), base->ended_us());
    // Built on different daemons: the dev build pulled its base from the registry.
    EXPECT_EQ(base->agent(), "agent-a");
    EXPECT_EQ(dev->agent(), "agent-b");
    for (const char* variant : {"dev", "release"}) {
      const v1::Task* test =
          FindTask(*job, absl::StrCat(variant, "-", py, "/test-", variant));
      ASSERT_NE(test, nullptr);
      const bool failing = std::string(variant) == "dev" && std::string(py) == "3.9";
      EXPECT_EQ(test->state(), failing ? v1::TASK_STATE_FAILED : v1::TASK_STATE_SUCCEEDED)
          << test->id() << ": " << test->reason();
      EXPECT_EQ(test->tests().passed(), failing ? 3 : 4) << test->id();
      EXPECT_EQ(test->tests().failed(), failing ? 1 : 0) << test->id();
      EXPECT_EQ(test->tests().skipped(), 1) << test->id();
      if (failing) {
        ASSERT_EQ(test->tests().failed_tests_size(), 1);
        EXPECT_EQ(test->tests().failed_tests(0), "tests/unittest/test_add.py::test_add_half");
      }
      // It ran with the one GPU its agent gave it.
      EXPECT_EQ(test->spec().run().gpus(), 1);
      ASSERT_EQ(test->gpu_ids_size(), 1) << test->id();
      EXPECT_EQ(test->gpu_ids(0), 0);
      EXPECT_TRUE(absl::StrContains(farm_.Cli({"logs", test->id()}).out,
                                    "MTHREADS_VISIBLE_DEVICES=0\n"))
          << test->id();
      if (failing) {
        // The suite's exit status agrees with its summary; the reason names it.
        EXPECT_EQ(test->reason(),
                  "suite unit: 1 failed, 1 passed, 1 skipped (exited 1 (pytest: tests failed))");
      }
      // The outputs, and each declared suite's exit status (`suites:`).
      ASSERT_EQ(test->artifacts_size(), 4) << test->id();
      std::set<std::string> names;
      for (const auto& a : test->artifacts()) names.insert(a.name());
      EXPECT_EQ(names, (std::set<std::string>{"integration_test_output.txt", "ut_output.txt",
                                              "integration_test_exit_code.txt",
                                              "ut_exit_code.txt"}));
    }
  }
  // The collected outputs come back byte for byte.
  const std::string out_dir = farm_.dir() + "/artifacts";
  CliResult art = farm_.Cli({"artifacts", "1/dev-3.9/test-dev", "--dir", out_dir});
  EXPECT_EQ(art.exit_code, 0) << art.err;
  EXPECT_TRUE(absl::StrContains(ReadFile(out_dir + "/ut_output.txt"),
                                "FAILED tests/unittest/test_add.py::test_add_half"));
  EXPECT_TRUE(
      absl::StrContains(ReadFile(out_dir + "/integration_test_output.txt"), "2 passed in 0.50s"));
  CliResult status = farm_.Cli({"status", "1"});
  EXPECT_TRUE(absl::StrContains(status.out, "ut_output.txt")) << status.out;
  // JUnit: one suite per test cell, the failing case named.
  const std::string junit = farm_.dir() + "/junit.xml";
  CliResult results = farm_.Cli({"results", "1", "--junit", junit});
  EXPECT_EQ(results.exit_code, 1) << results.err;
  // Parsed, not matched as text: the document's layout is the XML library's.
  pugi::xml_document doc;
  const pugi::xml_parse_result parsed = doc.load_file(junit.c_str());
  ASSERT_TRUE(parsed) << parsed.description() << "\n" << ReadFile(junit);
  EXPECT_TRUE(absl::StartsWith(ReadFile(junit), "<?xml")) << ReadFile(junit);
  std::map<std::string, pugi::xml_node> suites;
  for (const pugi::xpath_node& n : doc.select_nodes("//testsuite")) {
    suites[n.node().attribute("name").value()] = n.node();
  }
  EXPECT_EQ(suites.size(), 6u) << ReadFile(junit);
  ASSERT_EQ(suites.count("dev-3.9/test-dev"), 1u) << ReadFile(junit);
  const pugi::xml_node failing = suites["dev-3.9/test-dev"];
  EXPECT_STREQ(failing.attribute("tests").value(), "5");
  EXPECT_STREQ(failing.attribute("failures").value(), "1");
  const pugi::xml_node half = failing.find_child_by_attribute("testcase", "name", "test_add_half");
  ASSERT_TRUE(half) << ReadFile(junit);
  EXPECT_STREQ(half.attribute("classname").value(), "tests.unittest.test_add");
  EXPECT_STREQ(half.child("failure").attribute("message").value(), "failed") << ReadFile(junit);
  // No container of ours is left on either daemon.
  for (const std::string& host : hosts_) {
    EXPECT_FALSE(absl::StrContains(Containers(host), "musafarm")) << Containers(host);
  }
}

TEST_F(DockerFarmTest, CancelDuringBuildAndRunLeavesNothingBehind) {
  const std::string spec = farm_.WritePipeline("slow.yaml", absl::StrCat(R"(
stages:
  - name: slowbuild
    labels: [role=base]
    docker_build:
      context: ")",
                                                                         farm_.dir(), R"(/ctx"
      network: none
      tags: ["musafarm/slow:1"]
  - name: slowrun
    labels: [role=dev]
    docker_run:
      image: musafarm/busybox:test
      command: ["sleep", "600"]
      network: none
)"));
  std::filesystem::create_directories(farm_.dir() + "/ctx");
  WriteFile(farm_.dir() + "/ctx/Dockerfile",
            "FROM musafarm/busybox:test\nRUN echo building; sleep 600; echo never\n");
  const std::string id = farm_.Submit(spec);
  ASSERT_TRUE(farm_.WaitForTaskState(id, "slowrun", v1::TASK_STATE_RUNNING));
  ASSERT_TRUE(WaitFor(
      [&] {
        return absl::StrContains(farm_.Cli({"logs", id + "/slowbuild"}).out, "building");
      },
      absl::Seconds(60)));
  ASSERT_TRUE(WaitFor([&] { return absl::StrContains(Containers(hosts_[1]), "musafarm"); }));
  CliResult c = farm_.Cli({"cancel", id});
  ASSERT_EQ(c.exit_code, 0) << c.err;
  ASSERT_TRUE(farm_.WaitForJobEnd(id, absl::Seconds(60)));
  auto job = farm_.Job(id);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(FindTask(*job, "slowbuild")->state(), v1::TASK_STATE_CANCELLED);
  EXPECT_EQ(FindTask(*job, "slowrun")->state(), v1::TASK_STATE_CANCELLED);
  // Nothing left: no container on either daemon, no docker CLI process.
  EXPECT_TRUE(WaitFor(
      [&] {
        return Containers(hosts_[0]).empty() && Containers(hosts_[1]).empty() &&
               DockerCliProcesses() == 0;
      },
      absl::Seconds(30)))
      << "a: " << Containers(hosts_[0]) << "\nb: " << Containers(hosts_[1])
      << "\ncli processes: " << DockerCliProcesses();
}

// Every regular file under `dir` that holds `needle`, as "path" lines.
std::string FilesContaining(const std::string& dir, const std::string& needle) {
  std::string found;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           dir, std::filesystem::directory_options::skip_permission_denied, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    if (absl::StrContains(ReadFile(it->path().string()), needle)) {
      absl::StrAppend(&found, it->path().string(), "\n");
    }
  }
  return found;
}

// Issue 16, item 8: the quick start's run is all green unless a failing cell
// is asked for (failing_python): Python 3.9's dev cell passes by default.
TEST_F(DockerFarmTest, TheFixtureFailsNoCellUnlessAsked) {
  CliResult r = farm_.Cli({"submit", Pipeline(), "-v", "3.9", "--variant", "dev", "--watch"},
                          absl::Seconds(300));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  auto job = farm_.Job("1");
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::Task* test = FindTask(*job, "dev-3.9/test-dev");
  ASSERT_NE(test, nullptr);
  EXPECT_EQ(test->state(), v1::TASK_STATE_SUCCEEDED) << test->reason();
  EXPECT_EQ(test->tests().passed(), 4);
  EXPECT_EQ(test->tests().failed(), 0);
  EXPECT_EQ(job->state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_F(DockerFarmTest, SecretUrlsReachTheBuildButNoLogStatusArtifactOrError) {
  // What a release engineer types, with torch_musa's build.sh options.
  const std::string kUrl =
      "https://ci:hunter2-5f3a9c@dl.musa.example/rc3.1.0/musa_toolkits.tar.gz?sig=Zk3q";
  const std::string kMudnn = "https://ci:hunter2-77b1e0@dl.musa.example/mudnn.tar.gz";
  CliResult r = farm_.Cli({"submit", Pipeline(), "-n", "musafarm/torch_musa", "-v", "3.8",
                           "--variant", "dev", "-m", kUrl, "--mudnn_url", kMudnn,
                           "--torch_musa_tag", "dev1.6.0", "--watch", "--logs"},
                          absl::Seconds(300));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  auto job = farm_.Job("1");
  ASSERT_TRUE(job.ok()) << job.status();
  ASSERT_EQ(job->tasks_size(), 3);  // base, dev, test-dev for Python 3.8
  EXPECT_EQ(job->params().at("torch_musa_tag"), "dev1.6.0");
  EXPECT_EQ(std::vector<std::string>(job->secrets().begin(), job->secrets().end()),
            (std::vector<std::string>{"MUDNN_URL", "MUSA_TOOLKITS_URL"}));

  // The URLs did reach the build: the Dockerfile saw them byte for byte...
  const std::string dev_log = farm_.Cli({"logs", "1/dev-3.8/dev"}).out;
  EXPECT_TRUE(absl::StrContains(dev_log, absl::StrCat("musa_toolkits_url: ", kUrl.size(), " bytes")))
      << dev_log;
  EXPECT_TRUE(absl::StrContains(dev_log, absl::StrCat("mudnn_url: ", kMudnn.size(), " bytes")))
      << dev_log;
  EXPECT_TRUE(absl::StrContains(dev_log, "mccl_url: not given")) << dev_log;
  // ...and what it printed of them was redacted, in the log and in artifacts.
  EXPECT_TRUE(absl::StrContains(dev_log, "fetching ***")) << dev_log;
  const std::string out_dir = farm_.dir() + "/artifacts";
  ASSERT_EQ(farm_.Cli({"artifacts", "1/dev-3.8/test-dev", "--dir", out_dir}).exit_code, 0);
  EXPECT_TRUE(absl::StrContains(ReadFile(out_dir + "/ut_output.txt"), "# toolkit from ***\n"));

  // Everything a user or operator can see: status, logs, artifact listings,
  // results and JUnit, agents, and errors about the same submission.
  std::vector<std::vector<std::string>> views = {
      {"status", "1"}, {"status", "1", "--output", "json"}, {"jobs"}, {"agents"},
      {"results", "1", "--junit", farm_.dir() + "/junit.xml"}, {"watch", "1", "--logs"}};
  for (const v1::Task& t : job->tasks()) {
    views.push_back({"logs", t.id()});
    views.push_back({"status", t.id(), "--output", "json"});
    views.push_back({"artifacts", t.id()});
  }
  for (const auto& view : views) farm_.Cli(view);
  // Errors: an unknown param and an undeclared secret, both with -m given.
  CliResult bad = farm_.Cli({"submit", Pipeline(), "-m", kUrl, "--param", "nosuch=1"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(bad.err, "--param nosuch")) << bad.err;
  ::setenv("MF_TEST_UNDECLARED", kUrl.c_str(), 1);
  CliResult undeclared =
      farm_.Cli({"submit", Pipeline(), "-m", kUrl, "--secret", "MF_TEST_UNDECLARED"});
  ::unsetenv("MF_TEST_UNDECLARED");
  EXPECT_EQ(undeclared.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(undeclared.err, "MF_TEST_UNDECLARED")) << undeclared.err;

  // The farm directory holds every CLI output above (cli-N.out/.err), the
  // coordinator's database, logs and artifacts, the agents' logs and work
  // directories, and both Docker daemons' data. The job has ended, so the
  // coordinator has dropped its copy of the secrets too.
  for (const std::string& secret : {kUrl, kMudnn, std::string("hunter2")}) {
    EXPECT_EQ(FilesContaining(farm_.dir(), secret), "") << "secret found";
  }
}

// The agent policy with real Docker agents (issue 10, point 4): a privileged
// container and a host mount go only to the agent the policy grants them;
// agent-b, which the policy leaves to the defaults, still runs an ordinary
// container, and the label it declares (role=dev) does not steer a privileged
// stage to it: that stage waits.
TEST_F(DockerFarmTest, PrivilegedAndHostMountStagesGoOnlyWhereThePolicyAllows) {
  const std::string policy = farm_.dir() + "/policy.yaml";
  WriteFile(policy,
            "agents:\n"
            "  - match: agent-a\n"
            "    labels: [\"role=*\"]\n"
            "    kinds: [exec, docker_build, docker_run, docker_push]\n"
            "    privileged: true\n"
            "    host_mounts: true\n");
  farm_.StopCoordinator(SIGTERM);
  farm_.StartCoordinator({"--agent-policy", policy});
  ASSERT_TRUE(WaitFor([&] {
    int connected = 0;
    for (const v1::Agent& a : farm_.Agents()) connected += a.state() == v1::AGENT_STATE_CONNECTED;
    return connected == 2;
  })) << "agents did not come back";
  const std::string mounted = farm_.dir() + "/mounted";
  std::filesystem::create_directories(mounted);
  WriteFile(mounted + "/marker", "from the host\n");
  const std::string id = farm_.Submit(farm_.WritePipeline("policy.yaml", absl::StrCat(R"(
stages:
  - name: priv
    docker_run:
      image: musafarm/busybox:test
      command: ["true"]
      privileged: true
      network: none
  - name: mount
    docker_run:
      image: musafarm/busybox:test
      command: ["cat", "/m/marker"]
      mounts: [")", mounted, R"(:/m:ro"]
      network: none
  - name: plain-on-dev
    labels: [role=dev]
    docker_run:
      image: musafarm/busybox:test
      command: ["true"]
      network: none
  - name: priv-on-dev
    labels: [role=dev]
    docker_run:
      image: musafarm/busybox:test
      command: ["true"]
      privileged: true
      network: none
)")));
  for (const char* task : {"mount", "plain-on-dev"}) {
    ASSERT_TRUE(farm_.WaitForTaskState(id, task, v1::TASK_STATE_SUCCEEDED, absl::Seconds(120)))
        << task;
  }
  // Where the privileged stage ran is the point; whether it succeeds is the
  // host's: this VM refuses privileged containers ("runc create failed: unable
  // to apply caps"), so it may end FAILED here.
  ASSERT_TRUE(WaitFor(
      [&] {
        auto j = farm_.Job(id);
        if (!j.ok()) return false;
        const v1::TaskState st = FindTask(*j, "priv")->state();
        return st == v1::TASK_STATE_SUCCEEDED || st == v1::TASK_STATE_FAILED;
      },
      absl::Seconds(120)));
  auto job = farm_.Job(id);
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(FindTask(*job, "priv")->agent(), "agent-a");
  EXPECT_EQ(FindTask(*job, "mount")->agent(), "agent-a");
  EXPECT_EQ(FindTask(*job, "plain-on-dev")->agent(), "agent-b");
  EXPECT_EQ(farm_.Cli({"logs", id + "/mount"}).out, "from the host\n");
  // Only agent-b declares role=dev, and the policy does not let it run a
  // privileged container: the stage waits for an agent that may.
  EXPECT_EQ(FindTask(*job, "priv-on-dev")->state(), v1::TASK_STATE_QUEUED);
  EXPECT_EQ(farm_.Cli({"cancel", id}).exit_code, 0);
  ASSERT_TRUE(farm_.WaitForJobEnd(id));
}

// HTTP status of HEAD on the tag's manifest in the registry (0: no answer).
int TagStatus(const std::string& registry, const std::string& name, const std::string& tag) {
  httplib::Client http(absl::StrCat("http://", registry));
  httplib::Result r =
      http.Head(absl::StrCat("/v2/", name, "/manifests/", tag).c_str(),
                {{"Accept", "application/vnd.docker.distribution.manifest.v2+json"}});
  return r ? r->status : 0;
}

// Rows of the coordinator's database matching `sql` (a count), read through
// SQLite beside the running coordinator (WAL lets a reader in).
int64_t CountRows(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  int64_t n = -1;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK &&
        sqlite3_step(s) == SQLITE_ROW) {
      n = sqlite3_column_int64(s, 0);
    }
    sqlite3_finalize(s);
  }
  sqlite3_close_v2(db);
  return n;
}

// Issue 16, item 5: a job past its pipeline's `retention:` goes with its log
// files, its rows and the registry tags no other job pushed; the job kept,
// its files, rows and tags, and a tag both pushed stay.
TEST_F(DockerFarmTest, ExpiryRemovesTheExpiredJobsFilesRowsAndRegistryTagsAndNothingElse) {
  auto pipeline = [&](const std::string& file, const std::string& retention,
                      const std::string& own) {
    return farm_.WritePipeline(file, absl::StrCat(retention, R"(
stages:
  - name: own
    docker_build:
      context: ")", kFixture, R"("
      dockerfile: Dockerfile.base
      network: none
      build_args: {SYS: "musafarm/busybox:test", PYTHON_VERSION: ")", own, R"("}
      tags: [")", registry_, "/retain/", own, R"(:1"]
      push: true
  - name: shared
    docker_build:
      context: ")", kFixture, R"("
      dockerfile: Dockerfile.base
      network: none
      build_args: {SYS: "musafarm/busybox:test", PYTHON_VERSION: "shared"}
      tags: [")", registry_, R"(/retain/shared:1"]
      push: true
)"));
  };
  // Job 1 keeps itself (no --retain on this farm); job 2 keeps itself 1 s.
  const std::string kept = farm_.Submit(pipeline("kept.yaml", "", "kept"));
  ASSERT_TRUE(farm_.WaitForJobEnd(kept, absl::Seconds(180)));
  const std::string expiring = farm_.Submit(pipeline("short.yaml", "retention: 1s", "short"));
  ASSERT_EQ(kept, "1");
  ASSERT_EQ(expiring, "2");
  ASSERT_TRUE(WaitFor(
      [&] {
        auto job = farm_.Job(expiring);
        return !job.ok() || job->state() != v1::JOB_STATE_RUNNING;
      },
      absl::Seconds(180)));
  auto ended = farm_.Job(expiring);
  if (ended.ok()) {
    EXPECT_EQ(ended->state(), v1::JOB_STATE_SUCCEEDED) << ended->DebugString();
  }
  auto kept_job = farm_.Job(kept);
  ASSERT_TRUE(kept_job.ok()) << kept_job.status();
  ASSERT_EQ(kept_job->state(), v1::JOB_STATE_SUCCEEDED);
  // Expired: the job, then its own tag.
  ASSERT_TRUE(WaitFor([&] { return farm_.Cli({"status", expiring}).exit_code == 2; },
                      absl::Seconds(60)))
      << farm_.Cli({"status", expiring}).out;
  ASSERT_TRUE(WaitFor([&] { return TagStatus(registry_, "retain/short", "1") == 404; },
                      absl::Seconds(60)));
  CliResult status = farm_.Cli({"status", expiring});
  EXPECT_TRUE(absl::StrContains(status.err, "no job '2'")) << status.err;
  EXPECT_EQ(farm_.Cli({"logs", expiring + "/own"}).exit_code, 2);
  EXPECT_FALSE(std::filesystem::exists(farm_.data_dir() + "/logs/2"));
  const std::string db = farm_.data_dir() + "/musafarm.db";
  EXPECT_EQ(CountRows(db, "SELECT count(*) FROM jobs WHERE id = '2'"), 0);
  EXPECT_EQ(CountRows(db, "SELECT count(*) FROM tasks WHERE job_id = '2'"), 0);
  EXPECT_EQ(CountRows(db, "SELECT count(*) FROM transitions WHERE task_id LIKE '2/%'"), 0);
  // Nothing else: job 1 with its logs, files, rows and tag, and the tag both pushed.
  EXPECT_EQ(TagStatus(registry_, "retain/kept", "1"), 200);
  EXPECT_EQ(TagStatus(registry_, "retain/shared", "1"), 200);
  EXPECT_EQ(farm_.Cli({"status", kept}).exit_code, 0);
  CliResult log = farm_.Cli({"logs", kept + "/own"});
  EXPECT_EQ(log.exit_code, 0) << log.err;
  EXPECT_FALSE(log.out.empty());
  EXPECT_TRUE(std::filesystem::exists(farm_.data_dir() + "/logs/1/own"));
  EXPECT_EQ(CountRows(db, "SELECT count(*) FROM jobs WHERE id = '1'"), 1);
  EXPECT_EQ(CountRows(db, "SELECT count(*) FROM tasks WHERE job_id = '1'"), 2);
  EXPECT_GT(CountRows(db, "SELECT count(*) FROM transitions WHERE task_id LIKE '1/%'"), 0);
  EXPECT_EQ(CountRows(db, "SELECT count(*) FROM image_outbox"), 0);
}

}  // namespace
}  // namespace musafarm::e2e
