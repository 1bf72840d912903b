#include "agent/executor/docker_executor.h"
#include "agent/executor/secret_files.h"
#include "tests/support/private_dockerd.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/execution_recorder.h"

namespace musafarm::agent {
namespace {

namespace fs = std::filesystem;
using Argv = std::vector<std::string>;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

using Recorder = testing::ExecutionRecorder;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

v1::Assignment Assign(uint64_t attempt = 42) {
  v1::Assignment a;
  a.set_task_id("7/dev/base");
  a.set_job_id("7");
  a.set_attempt_id(attempt);
  return a;
}

// ---------------------------------------------------------------------------
// Unit tests against a fake CLI: a bash script that records each call's argv
// (NUL-separated, one file per call) and DOCKER_HOST / DOCKER_BUILDKIT, and
// then behaves per subcommand.

class FakeDockerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           absl::StrCat("mf-dockerfake-", ::getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "work");
    workdir_ = (dir_ / "work").string();
    WriteFake({});
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Writes the fake CLI. `bodies` replaces the default behaviour of a subcommand.
  // $D in a body is the test's directory.
  void WriteFake(std::map<std::string, std::string> bodies) {
    std::map<std::string, std::string> b = {
        {"build", "echo 'Step 1/2 : FROM base'; echo 'Successfully built 0123abcd'"},
        {"run", "echo 'hello from the container'; echo 'to stderr' >&2; exit 3"},
        {"push", "echo \"pushed $2\""},
        {"cp",
         "case \"$2\" in *missing*) echo \"Error: No such container:path: $2\" >&2; exit 1;; esac\n"
         "    if [[ \"$2\" == */ ]]; then mkdir -p \"$3\"; echo x > \"$3/f\";"
         " else echo \"content of $2\" > \"$3\"; fi"},
        {"kill", "touch \"$D/killed\"; echo \"$2\""},
        {"rm", "echo \"$3\""},
        {"ps", "true"},
    };
    for (auto& [k, v] : bodies) b[k] = v;
    std::string script = absl::StrCat(
        "#!/bin/bash\n"
        "D='",
        dir_.string(),
        "'\n"
        "n=$(( $(cat \"$D/count\" 2>/dev/null || echo 0) + 1 ))\n"
        "echo \"$n\" > \"$D/count\"\n"
        "printf '%s\\0' \"$@\" > \"$D/call.$n\"\n"
        "printf 'DOCKER_HOST=%s\\nDOCKER_BUILDKIT=%s\\n' \"${DOCKER_HOST-unset}\" "
        "\"${DOCKER_BUILDKIT-unset}\" > \"$D/env.$n\"\n"
        "env -0 > \"$D/allenv.$n\"\n"
        "case \"$1\" in\n");
    for (const auto& [k, v] : b) absl::StrAppend(&script, "  ", k, ")\n    ", v, "\n    ;;\n");
    absl::StrAppend(&script, "  *) echo \"fake docker: unknown $1\" >&2; exit 99 ;;\nesac\n");
    const fs::path fake = dir_ / "docker";
    std::ofstream(fake) << script;
    fs::permissions(fake, fs::perms::owner_all);
  }

  DockerOptions Options() {
    DockerOptions o;
    o.cli = (dir_ / "docker").string();
    o.docker_host = "unix:///fake/docker.sock";
    o.farm = "testfarm";
    o.kill_grace = absl::Milliseconds(300);
    o.helper_timeout = absl::Seconds(5);
    return o;
  }

  // Starts `a` and waits for its end.
  void RunToEnd(const v1::Assignment& a, Recorder* r, DockerOptions o) {
    DockerExecutor executor(std::move(o));
    auto exec = executor.Start(a, workdir_, r->Callbacks());
    ASSERT_TRUE(exec.ok()) << exec.status();
    ASSERT_TRUE(r->Wait());
  }
  void RunToEnd(const v1::Assignment& a, Recorder* r) { RunToEnd(a, r, Options()); }

  std::vector<Argv> Calls() {
    std::vector<Argv> calls;
    for (int n = 1; fs::exists(dir_ / absl::StrCat("call.", n)); ++n) {
      std::string data = ReadFile(dir_ / absl::StrCat("call.", n));
      Argv argv = absl::StrSplit(data, '\0');
      if (!argv.empty() && argv.back().empty()) argv.pop_back();
      calls.push_back(argv);
    }
    return calls;
  }
  std::string CallEnv(int n) { return ReadFile(dir_ / absl::StrCat("env.", n)); }
  // The whole environment call `n` (from 1) ran with.
  std::map<std::string, std::string> CallFullEnv(int n) {
    std::map<std::string, std::string> env;
    for (absl::string_view kv :
         absl::StrSplit(ReadFile(dir_ / absl::StrCat("allenv.", n)), '\0', absl::SkipEmpty())) {
      const size_t eq = kv.find('=');
      env[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
    }
    return env;
  }
  // No argument of any call holds any of `values`, whole or in part of an argument.
  void ExpectNoValueInAnyArgv(const std::vector<std::string>& values) {
    for (const Argv& call : Calls()) {
      for (const std::string& arg : call) {
        for (const std::string& v : values) {
          EXPECT_THAT(arg, Not(HasSubstr(v))) << absl::StrJoin(call, " ");
        }
      }
    }
  }

  fs::path dir_;
  std::string workdir_;
};

const Argv kLabels = {"--label=musafarm.farm=testfarm", "--label=musafarm.task=7/dev/base",
                      "--label=musafarm.attempt=42"};
const Argv kRmF = {"rm", "-f", "musafarm-42"};
const Argv kPs = {"ps", "-aq", "--filter=label=musafarm.farm=testfarm",
                  "--filter=label=musafarm.attempt=42"};

Argv Cat(std::initializer_list<Argv> parts) {
  Argv out;
  for (const Argv& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST_F(FakeDockerTest, BuildArgvLabelsAndEnvironment) {
  v1::Assignment a = Assign();
  v1::DockerBuildStage* b = a.mutable_run()->mutable_docker_build();
  b->set_context("/src/ctx");
  b->set_dockerfile("docker/Dockerfile.dev");
  b->set_network("none");
  b->set_target("dev");
  (*b->mutable_build_args())["PY"] = "3.8";
  (*b->mutable_build_args())["A_FIRST"] = "x y";
  b->add_tags("reg/app:dev");
  b->add_tags("reg/app:latest");
  Recorder r;
  RunToEnd(a, &r);
  EXPECT_EQ(r.exit.exit_code, 0);
  EXPECT_FALSE(r.exit.cancelled);
  EXPECT_EQ(r.Out(), "Step 1/2 : FROM base\nSuccessfully built 0123abcd\n");
  EXPECT_THAT(
      Calls(),
      ElementsAre(
          Cat({{"build", "--network=none", "--target=dev", "--file=/src/ctx/docker/Dockerfile.dev"},
               kLabels,
               {"--build-arg=A_FIRST=x y", "--build-arg=PY=3.8", "--tag=reg/app:dev",
                "--tag=reg/app:latest", "--force-rm", "/src/ctx"}})));
  EXPECT_EQ(CallEnv(1), "DOCKER_HOST=unix:///fake/docker.sock\nDOCKER_BUILDKIT=0\n");
}

TEST_F(FakeDockerTest, BuildDefaultsDockerfileInContextAndPushesEveryTag) {
  v1::Assignment a = Assign();
  v1::DockerBuildStage* b = a.mutable_run()->mutable_docker_build();
  b->set_context("ctx");
  b->add_tags("127.0.0.1:5000/app:1");
  b->add_tags("127.0.0.1:5000/app:latest");
  b->set_push(true);
  DockerOptions o = Options();
  o.buildkit = true;
  Recorder r;
  RunToEnd(a, &r, o);
  EXPECT_EQ(r.exit.exit_code, 0);
  EXPECT_THAT(Calls(), ElementsAre(Cat({{"build", "--file=ctx/Dockerfile"},
                                        kLabels,
                                        {"--tag=127.0.0.1:5000/app:1",
                                         "--tag=127.0.0.1:5000/app:latest", "--force-rm", "ctx"}}),
                                   Argv{"push", "127.0.0.1:5000/app:1"},
                                   Argv{"push", "127.0.0.1:5000/app:latest"}));
  EXPECT_THAT(CallEnv(1), HasSubstr("DOCKER_BUILDKIT=1\n"));
  EXPECT_THAT(r.Out(),
              HasSubstr("pushed 127.0.0.1:5000/app:1\npushed 127.0.0.1:5000/app:latest\n"));
}

TEST_F(FakeDockerTest, FailedBuildIsNotPushed) {
  WriteFake({{"build", "echo 'step failed'; exit 1"}});
  v1::Assignment a = Assign();
  a.mutable_run()->mutable_docker_build()->set_context("/ctx");
  a.mutable_run()->mutable_docker_build()->add_tags("t:1");
  a.mutable_run()->mutable_docker_build()->set_push(true);
  Recorder r;
  RunToEnd(a, &r);
  EXPECT_EQ(r.exit.exit_code, 1);
  ASSERT_EQ(Calls().size(), 1u);
  EXPECT_EQ(Calls()[0][0], "build");
}

TEST_F(FakeDockerTest, PushStopsAtFirstFailure) {
  WriteFake({{"push", "[ \"$2\" = b ] && { echo denied; exit 1; }; echo \"pushed $2\""}});
  v1::Assignment a = Assign();
  for (const char* i : {"a", "b", "c"}) a.mutable_run()->mutable_docker_push()->add_images(i);
  Recorder r;
  RunToEnd(a, &r);
  EXPECT_EQ(r.exit.exit_code, 1);
  EXPECT_THAT(Calls(), ElementsAre(Argv{"push", "a"}, Argv{"push", "b"}));
  EXPECT_EQ(r.Out(), "pushed a\ndenied\n");
}

// Issue 12: registry credentials reach `docker push` in a DOCKER_CONFIG of
// the attempt's own, in its work dir, private, and gone after the push.
TEST_F(FakeDockerTest, PushWithRegistryAuthUsesATemporaryDockerConfig) {
  WriteFake({{"push",
              "stat -c %a \"$DOCKER_CONFIG\" \"$DOCKER_CONFIG/config.json\" > \"$D/modes\"; "
              "cp \"$DOCKER_CONFIG/config.json\" \"$D/config.json\"; "
              "echo \"$DOCKER_CONFIG\" > \"$D/where\"; echo \"pushed $2\""}});
  v1::Assignment a = Assign();
  a.mutable_run()->mutable_docker_push()->add_images("harbor.example.com/p/img:1");
  a.mutable_run()->mutable_docker_push()->set_registry_auth("HARBOR");
  a.mutable_run()->add_secrets("HARBOR");
  (*a.mutable_secrets())["HARBOR"] = "robot:hunter22";
  Recorder r;
  RunToEnd(a, &r);
  EXPECT_EQ(r.exit.exit_code, 0) << r.Out();
  const std::string where(absl::StripTrailingAsciiWhitespace(ReadFile(dir_ / "where")));
  EXPECT_EQ(where, absl::StrCat(workdir_, "/.docker-config-", a.attempt_id()));
  EXPECT_EQ(ReadFile(dir_ / "modes"), "700\n600\n");
  EXPECT_THAT(ReadFile(dir_ / "config.json"),
              HasSubstr("\"harbor.example.com\": {\"auth\": \"cm9ib3Q6aHVudGVyMjI=\"}"));
  EXPECT_FALSE(fs::exists(where)) << "removed after the push";
  // A missing secret fails the attempt before any push, naming the secret only.
  (*a.mutable_secrets()).clear();
  Recorder missing;
  RunToEnd(a, &missing);
  EXPECT_EQ(missing.exit.exit_code, 1);
  EXPECT_THAT(missing.Out(), HasSubstr("registry_auth secret 'HARBOR' was not supplied"));
}

// Issue 16, item 3: the daemon dies under a run. The CLI says so, `rm -f`
// fails, the ping confirms it: the attempt is the host's loss (handed back by
// the agent), and the container's removal waits in the pending list until
// RetryPendingRemovals finds the daemon back.
TEST_F(FakeDockerTest, ADaemonGoneMidRunIsAHostLossAndTheRemovalIsRetriedLater) {
  WriteFake({{"run", "echo running; echo 'error waiting for container: unexpected EOF' >&2; exit 125"},
             {"rm", "echo 'Cannot connect to the Docker daemon at unix:///fake.' >&2; exit 1"},
             {"version", "echo 'Cannot connect to the Docker daemon at unix:///fake. Is the docker "
                         "daemon running?' >&2; exit 1"}});
  PendingRemovals pending((dir_ / "pending-removals").string());
  DockerOptions o = Options();
  o.pending_removals = &pending;
  v1::Assignment a = Assign();
  a.mutable_run()->mutable_docker_run()->set_image("busybox");
  Recorder r;
  RunToEnd(a, &r, o);
  EXPECT_EQ(r.exit.exit_code, 125);
  EXPECT_TRUE(r.exit.daemon_lost);
  EXPECT_THAT(r.exit.host_lost,
              HasSubstr("docker daemon unreachable: exit 1: Cannot connect to the Docker daemon"));
  EXPECT_THAT(pending.List(), ElementsAre(PendingRemovals::Entry{"container", "musafarm-42"}));
  EXPECT_THAT(r.Out(), HasSubstr("will remove container musafarm-42 when the daemon answers again"));

  DockerExecutor executor(o);
  EXPECT_FALSE(executor.Ping().ok());
  EXPECT_TRUE(executor.RetryPendingRemovals().empty());  // still down
  EXPECT_EQ(pending.List().size(), 1u);
  WriteFake({{"version", "echo 20.10.24"}});  // back
  EXPECT_TRUE(executor.Ping().ok());
  EXPECT_THAT(executor.RetryPendingRemovals(), ElementsAre(HasSubstr("removed container musafarm-42")));
  EXPECT_TRUE(pending.List().empty());
  EXPECT_EQ(Calls().back(), kRmF);
}

// A stage that fails while the daemon answers is the stage's failure: no ping
// unless the CLI's words point at the daemon, and no host loss.
TEST_F(FakeDockerTest, AnOrdinaryFailureIsNotAHostLoss) {
  WriteFake({{"run", "echo 'unexpected EOF in the test data'; exit 1"},
             {"version", "echo 20.10.24"}});
  v1::Assignment a = Assign();
  a.mutable_run()->mutable_docker_run()->set_image("busybox");
  Recorder r;
  RunToEnd(a, &r);
  EXPECT_EQ(r.exit.exit_code, 1);
  EXPECT_TRUE(r.exit.host_lost.empty());
  EXPECT_EQ(Calls().back(), (Argv{"version", "--format", "{{.Server.Version}}"}));
}

TEST_F(FakeDockerTest, RunArgvExitCodeCollectAndRemove) {
  v1::Assignment a = Assign();
  (*a.mutable_run()->mutable_env())["PYTHON"] = "3.8";
  v1::DockerRunStage* d = a.mutable_run()->mutable_docker_run();
  d->set_image("reg/app:dev");
  d->add_command("bash");
  d->add_command("-c");
  d->add_command("pytest -x");
  d->set_privileged(true);
  d->set_shm_size("80g");
  d->add_devices("/dev/dri");
  d->add_devices("/dev/mtgpu.0");
  v1::Mount* m = d->add_mounts();
  m->set_source("/data");
  m->set_target("/data");
  m->set_read_only(true);
  m = d->add_mounts();
  m->set_source("/cache");
  m->set_target("/root/.cache");
  d->set_network("none");
  d->set_user("1000:1000");
  d->set_workdir("/home");
  d->add_collect("/home/ut_output.txt");
  d->add_collect("/tmp/missing.txt");
  d->add_collect("/other/ut_output.txt");
  d->add_collect("/home/reports/");
  Recorder r;
  RunToEnd(a, &r);
  EXPECT_EQ(r.exit.exit_code, 3);
  EXPECT_EQ(r.exit.signal, 0);
  EXPECT_FALSE(r.exit.cancelled);
  EXPECT_THAT(
      Calls(),
      ElementsAre(
          Cat({{"run", "--name=musafarm-42"},
               kLabels,
               {"--privileged", "--shm-size=80g", "--device=/dev/dri", "--device=/dev/mtgpu.0",
                "--volume=/data:/data:ro", "--volume=/cache:/root/.cache", "--network=none",
                "--user=1000:1000", "--workdir=/home", "--init", "--env=MUSAFARM_ATTEMPT_ID=42",
                "--env=MUSAFARM_JOB_ID=7", "--env=MUSAFARM_TASK_ID=7/dev/base", "--env=PYTHON=3.8",
                "reg/app:dev", "bash", "-c", "pytest -x"}}),
          Argv{"cp", "musafarm-42:/home/ut_output.txt", workdir_ + "/artifacts/ut_output.txt"},
          Argv{"cp", "musafarm-42:/tmp/missing.txt", workdir_ + "/artifacts/missing.txt"},
          Argv{"cp", "musafarm-42:/other/ut_output.txt", workdir_ + "/artifacts/ut_output-2.txt"},
          Argv{"cp", "musafarm-42:/home/reports/", workdir_ + "/artifacts/reports"}, kRmF));
  EXPECT_EQ(CallEnv(1), "DOCKER_HOST=unix:///fake/docker.sock\nDOCKER_BUILDKIT=unset\n");
  EXPECT_EQ(r.Out(),
            "hello from the container\nto stderr\n"
            "musafarm: /tmp/missing.txt not found in the container\n");
  ASSERT_EQ(r.exit.files.size(), 3u);
  EXPECT_EQ(r.exit.files[0].name, "ut_output.txt");
  EXPECT_EQ(r.exit.files[0].source, "/home/ut_output.txt");
  EXPECT_EQ(r.exit.files[0].host_path, workdir_ + "/artifacts/ut_output.txt");
  EXPECT_EQ(ReadFile(r.exit.files[0].host_path), "content of musafarm-42:/home/ut_output.txt\n");
  EXPECT_EQ(r.exit.files[1].name, "ut_output-2.txt");
  EXPECT_EQ(ReadFile(r.exit.files[1].host_path), "content of musafarm-42:/other/ut_output.txt\n");
  EXPECT_EQ(r.exit.files[2].name, "reports");
  EXPECT_TRUE(fs::is_directory(r.exit.files[2].host_path));
}

TEST_F(FakeDockerTest, StageEnvOverridesOursAndNoDuplicates) {
  v1::Assignment a = Assign();
  (*a.mutable_run()->mutable_env())["MUSAFARM_JOB_ID"] = "mine";
  a.mutable_run()->mutable_docker_run()->set_image("img");
  Recorder r;
  RunToEnd(a, &r);
  EXPECT_THAT(Calls()[0],
              ElementsAre("run", "--name=musafarm-42", kLabels[0], kLabels[1], kLabels[2], "--init",
                          "--env=MUSAFARM_ATTEMPT_ID=42", "--env=MUSAFARM_JOB_ID=mine",
                          "--env=MUSAFARM_TASK_ID=7/dev/base", "img"));
}

TEST_F(FakeDockerTest, RemovesContainerAfterFailureToStart) {
  WriteFake({{"run", "echo 'docker: Error response from daemon: no such image' >&2; exit 125"}});
  v1::Assignment a = Assign();
  a.mutable_run()->mutable_docker_run()->set_image("nope");
  Recorder r;
  RunToEnd(a, &r);
  EXPECT_EQ(r.exit.exit_code, 125);
  ASSERT_EQ(Calls().size(), 2u);
  EXPECT_EQ(Calls()[1], kRmF);
}

TEST_F(FakeDockerTest, RemovesContainerWhenTheCliCrashes) {
  WriteFake({{"run", "echo partial; kill -SEGV $$"}});
  v1::Assignment a = Assign();
  a.mutable_run()->mutable_docker_run()->set_image("img");
  Recorder r;
  RunToEnd(a, &r);
  EXPECT_EQ(r.exit.signal, SIGSEGV);
  EXPECT_FALSE(r.exit.cancelled);
  const std::vector<Argv> calls = Calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[1], kRmF);
  EXPECT_EQ(calls[2], kPs);  // and anything else labelled with the attempt
}

constexpr char kBlockingRun[] =
    "echo started; while [ ! -e \"$D/killed\" ]; do sleep 0.05; done; echo 'container killed'; "
    "exit 137";

TEST_F(FakeDockerTest, CancelKillsTheContainerByNameThenRemovesIt) {
  WriteFake({{"run", kBlockingRun}});
  v1::Assignment a = Assign();
  a.mutable_run()->mutable_docker_run()->set_image("img");
  a.mutable_run()->mutable_docker_run()->add_collect("/out.txt");
  DockerExecutor executor(Options());
  Recorder r;
  auto exec = executor.Start(a, workdir_, r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.WaitOutput("started\n"));
  (*exec)->Cancel();
  ASSERT_TRUE(r.Wait());
  EXPECT_TRUE(r.exit.cancelled);
  EXPECT_EQ(r.exit.exit_code, 137);
  EXPECT_TRUE(r.exit.files.empty());  // nothing is collected after a cancel
  const std::vector<Argv> calls = Calls();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[0][0], "run");
  EXPECT_EQ(calls[1], (Argv{"kill", "musafarm-42"}));
  EXPECT_EQ(calls[2], kRmF);
  EXPECT_EQ(calls[3], kPs);
  EXPECT_EQ(r.Out(), "started\nmusafarm: cancelled; stopping\ncontainer killed\n");
}

TEST_F(FakeDockerTest, KillIsRetriedUntilTheContainerExists) {
  WriteFake({{"run", kBlockingRun},
             {"kill",
              "k=$(( $(cat \"$D/kills\" 2>/dev/null || echo 0) + 1 )); echo $k > \"$D/kills\"\n"
              "    [ $k -lt 3 ] && { echo \"Error: No such container: $2\" >&2; exit 1; }\n"
              "    touch \"$D/killed\""}});
  v1::Assignment a = Assign();
  a.mutable_run()->mutable_docker_run()->set_image("img");
  DockerOptions o = Options();
  o.kill_grace = absl::Seconds(10);  // the retries, not SIGTERM, must end it
  DockerExecutor executor(o);
  Recorder r;
  auto exec = executor.Start(a, workdir_, r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.WaitOutput("started\n"));
  (*exec)->Cancel();
  ASSERT_TRUE(r.Wait());
  EXPECT_TRUE(r.exit.cancelled);
  EXPECT_EQ(r.exit.exit_code, 137);
  EXPECT_EQ(ReadFile(dir_ / "kills"), "3\n");
  // Reported once, not on every retry.
  EXPECT_EQ(r.Out(),
            "started\nmusafarm: cancelled; stopping\n"
            "musafarm: docker kill musafarm-42 failed: exit 1: Error: No such container: "
            "musafarm-42\ncontainer killed\n");
}

TEST_F(FakeDockerTest, CliThatSurvivesKillGetsTermThenKill) {
  WriteFake({{"run", "trap '' TERM; echo started; while :; do sleep 0.05; done"},
             {"kill", "echo \"$2\""}});
  v1::Assignment a = Assign();
  a.mutable_run()->mutable_docker_run()->set_image("img");
  DockerExecutor executor(Options());
  Recorder r;
  auto exec = executor.Start(a, workdir_, r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.WaitOutput("started\n"));
  const absl::Time t0 = absl::Now();
  (*exec)->Cancel();
  ASSERT_TRUE(r.Wait());
  EXPECT_GE(absl::Now() - t0, absl::Milliseconds(600));  // two graces
  EXPECT_TRUE(r.exit.cancelled);
  EXPECT_EQ(r.exit.signal, SIGKILL);
  const std::vector<Argv> calls = Calls();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[1], (Argv{"kill", "musafarm-42"}));
  EXPECT_EQ(calls[2], kRmF);
  EXPECT_EQ(calls[3], kPs);
}

TEST_F(FakeDockerTest, TimeoutKillsTheContainer) {
  WriteFake({{"run", kBlockingRun}});
  v1::Assignment a = Assign();
  a.mutable_run()->set_timeout_seconds(1);
  a.mutable_run()->mutable_docker_run()->set_image("img");
  Recorder r;
  RunToEnd(a, &r);
  EXPECT_TRUE(r.exit.timed_out);
  EXPECT_FALSE(r.exit.cancelled);
  const std::vector<Argv> calls = Calls();
  ASSERT_EQ(calls.size(), 4u);
  EXPECT_EQ(calls[1], (Argv{"kill", "musafarm-42"}));
  EXPECT_EQ(calls[2], kRmF);
  EXPECT_THAT(r.Out(), HasSubstr("musafarm: timed out after 1s; stopping\n"));
}

TEST_F(FakeDockerTest, CancelBuildTerminatesTheCliAndRemovesLabelledContainers) {
  WriteFake({{"build", "echo started; sleep 30"},
             {"ps", "echo 0123456789ab; echo 'WARNING: not an id' >&2"}});
  v1::Assignment a = Assign();
  a.mutable_run()->mutable_docker_build()->set_context("/ctx");
  a.mutable_run()->mutable_docker_build()->add_tags("t:1");
  a.mutable_run()->mutable_docker_build()->set_push(true);
  DockerExecutor executor(Options());
  Recorder r;
  auto exec = executor.Start(a, workdir_, r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.WaitOutput("started\n"));
  const absl::Time t0 = absl::Now();
  (*exec)->Cancel();
  ASSERT_TRUE(r.Wait());
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
  EXPECT_TRUE(r.exit.cancelled);
  EXPECT_EQ(r.exit.signal, SIGTERM);
  const std::vector<Argv> calls = Calls();
  ASSERT_EQ(calls.size(), 3u);  // no push
  EXPECT_EQ(calls[0][0], "build");
  EXPECT_EQ(calls[1], kPs);
  EXPECT_EQ(calls[2], (Argv{"rm", "-f", "0123456789ab"}));
}

TEST_F(FakeDockerTest, AgentLabelMarksWhatItMakesAndScopesItsCleanup) {
  WriteFake({{"build", "echo started; sleep 30"}, {"ps", "echo 0123456789ab"}});
  v1::Assignment a = Assign();
  a.mutable_run()->mutable_docker_build()->set_context("/ctx");
  a.mutable_run()->mutable_docker_build()->add_tags("t:1");
  DockerOptions o = Options();
  o.agent = "gpu-07";
  DockerExecutor executor(o);
  Recorder r;
  auto exec = executor.Start(a, workdir_, r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.WaitOutput("started\n"));
  (*exec)->Cancel();
  ASSERT_TRUE(r.Wait());
  const std::vector<Argv> calls = Calls();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_THAT(calls[0], ::testing::Contains("--label=musafarm.agent=gpu-07"));
  // Another agent's containers of the same attempt id (another farm's
  // coordinator) are not this agent's to remove.
  EXPECT_EQ(calls[1],
            (Argv{"ps", "-aq", "--filter=label=musafarm.farm=testfarm",
                  "--filter=label=musafarm.agent=gpu-07", "--filter=label=musafarm.attempt=42"}));
  EXPECT_EQ(calls[2], (Argv{"rm", "-f", "0123456789ab"}));
}

TEST_F(FakeDockerTest, RemoveLeftoversTakesThisAgentsContainersAndUnfinishedImagesOnly) {
  WriteFake({
      {"ps", "echo aaaa1111; echo bbbb2222; echo 'WARNING: not an id' >&2"},
      {"container",
       "case \"$5\" in musafarm-13) echo 'cccc3333 testfarm 13';;"
       " musafarm-15) echo 'dddd4444 otherfarm 15';;"
       " *) echo \"Error: No such container: $5\" >&2; exit 1;; esac"},
      {"image",
       "if [ \"$2\" = inspect ]; then case \"$5\" in"
       " reg/app:dev) echo 'testfarm gpu-07 14';;"
       " reg/app:rebuilt) echo 'testfarm gpu-07 99';;"
       " reg/app:theirs) echo 'testfarm gpu-08 14';;"
       " *) echo 'Error: No such image' >&2; exit 1;; esac; else echo \"Untagged: $3\"; fi"},
  });
  DockerOptions o = Options();
  o.agent = "gpu-07";
  DockerExecutor executor(o);
  auto recorded = [](std::string task, uint64_t attempt, std::string kind, std::string container,
                     std::vector<std::string> images) {
    AttemptTraces r;
    r.task_id = std::move(task);
    r.attempt_id = attempt;
    r.kind = std::move(kind);
    r.container = std::move(container);
    r.images = std::move(images);
    return r;
  };
  AttemptTraces run = recorded("7/dev/run", 13, "docker_run", "musafarm-13", {});
  AttemptTraces foreign = recorded("7/dev/x", 15, "docker_run", "musafarm-15", {});
  AttemptTraces build =
      recorded("7/dev/base", 14, "docker_build", "",
               {"reg/app:dev", "reg/app:rebuilt", "reg/app:theirs", "reg/app:missing"});
  const std::vector<std::string> lines = executor.RemoveLeftovers({run, foreign, build});
  const std::vector<Argv> calls = Calls();
  const std::string fmt_c =
      "{{.Id}} {{index .Config.Labels \"musafarm.farm\"}} "
      "{{index .Config.Labels \"musafarm.attempt\"}}";
  const std::string fmt_i =
      "{{index .Config.Labels \"musafarm.farm\"}} {{index .Config.Labels \"musafarm.agent\"}} "
      "{{index .Config.Labels \"musafarm.attempt\"}}";
  EXPECT_THAT(
      calls,
      ElementsAre(Argv{"ps", "-aq", "--no-trunc", "--filter=label=musafarm.farm=testfarm",
                       "--filter=label=musafarm.agent=gpu-07"},
                  Argv{"rm", "-f", "aaaa1111", "bbbb2222"},
                  // Recorded by name, made before the agent label: farm and attempt must match.
                  Argv{"container", "inspect", "--format", fmt_c, "musafarm-13"},
                  Argv{"rm", "-f", "musafarm-13"},
                  Argv{"container", "inspect", "--format", fmt_c, "musafarm-15"},
                  // Only the tags this agent's attempt still owns.
                  Argv{"image", "inspect", "--format", fmt_i, "reg/app:dev"},
                  Argv{"image", "rm", "reg/app:dev"},
                  Argv{"image", "inspect", "--format", fmt_i, "reg/app:rebuilt"},
                  Argv{"image", "inspect", "--format", fmt_i, "reg/app:theirs"},
                  Argv{"image", "inspect", "--format", fmt_i, "reg/app:missing"}));
  EXPECT_THAT(lines, ElementsAre(HasSubstr("removed 2 container(s) of an earlier run"),
                                 HasSubstr("removed container musafarm-13"),
                                 HasSubstr("removed image reg/app:dev")));
}

// An agent restarted while its daemon is down keeps what it could not remove
// for when the daemon answers (issue 16, item 3).
TEST_F(FakeDockerTest, LeftoversWhileTheDaemonIsDownAreKeptForLater) {
  const std::string down = "echo 'Cannot connect to the Docker daemon at unix:///fake.' >&2; exit 1";
  WriteFake({{"ps", down}, {"container", down}});
  PendingRemovals pending((dir_ / "pending-removals").string());
  DockerOptions o = Options();
  o.agent = "gpu-07";
  o.pending_removals = &pending;
  AttemptTraces run;
  run.task_id = "7/dev/run";
  run.attempt_id = 13;
  run.kind = "docker_run";
  run.container = "musafarm-13";
  DockerExecutor(o).RemoveLeftovers({run});
  EXPECT_THAT(pending.List(), ElementsAre(PendingRemovals::Entry{"attempt", "13"},
                                          PendingRemovals::Entry{"container", "musafarm-13"}));
}

TEST_F(FakeDockerTest, RemoveLeftoversWithoutAnAgentNameTouchesNoUnrecordedContainer) {
  DockerExecutor executor(Options());  // no agent label: nothing is known to be ours
  EXPECT_THAT(executor.RemoveLeftovers({}), ::testing::IsEmpty());
  EXPECT_THAT(Calls(), ::testing::IsEmpty());
}

TEST_F(FakeDockerTest, SecretLookingValuesAreArgvNotShell) {
  const std::string secret =
      "s3cr3t'\"; touch pwned1; $(touch pwned2) `touch pwned3` | touch pwned4 && echo $HOME";
  v1::Assignment a = Assign();
  v1::DockerBuildStage* b = a.mutable_run()->mutable_docker_build();
  b->set_context("/ctx");
  b->add_tags("t:1");
  (*b->mutable_build_args())["TOKEN"] = secret;
  Recorder r;
  RunToEnd(a, &r);

  v1::Assignment a2 = Assign(43);
  (*a2.mutable_run()->mutable_env())["TOKEN"] = secret;
  a2.mutable_run()->mutable_docker_run()->set_image("img");
  a2.mutable_run()->mutable_docker_run()->add_command(secret);
  Recorder r2;
  RunToEnd(a2, &r2);

  const std::vector<Argv> calls = Calls();
  ASSERT_GE(calls.size(), 2u);
  EXPECT_THAT(calls[0], ::testing::Contains("--build-arg=TOKEN=" + secret));
  EXPECT_THAT(calls[1], ::testing::Contains("--env=TOKEN=" + secret));
  EXPECT_EQ(calls[1].back(), secret);
  for (const char* f : {"pwned1", "pwned2", "pwned3", "pwned4"}) {
    EXPECT_FALSE(fs::exists(fs::path(workdir_) / f)) << f;
    EXPECT_FALSE(fs::exists(dir_ / f)) << f;
  }
  // Nor is it echoed into the log.
  EXPECT_THAT(r.Out() + r2.Out(), Not(HasSubstr("s3cr3t")));
}

constexpr char kUrl[] = "https://user:pw@example.com/musa.git";
constexpr char kToken[] = "tok-8c1f";

// Secrets the stage names (MUSA_URL, API_TOKEN, NOT_SUPPLIED) next to one it
// does not (UNLISTED); NOT_SUPPLIED has no value.
void AddSecrets(v1::Assignment* a) {
  for (const char* n : {"MUSA_URL", "API_TOKEN", "NOT_SUPPLIED"}) a->mutable_run()->add_secrets(n);
  (*a->mutable_secrets())["MUSA_URL"] = kUrl;
  (*a->mutable_secrets())["API_TOKEN"] = kToken;
  (*a->mutable_secrets())["UNLISTED"] = "not-for-this-stage";
}

TEST_F(FakeDockerTest, BuildPassesSecretsByNameThroughBuildKit) {
  v1::Assignment a = Assign();
  AddSecrets(&a);
  v1::DockerBuildStage* b = a.mutable_run()->mutable_docker_build();
  b->set_context("/ctx");
  b->add_tags("t:1");
  b->set_push(true);
  Recorder r;
  RunToEnd(a, &r);  // options.buildkit is false: secrets turn BuildKit on
  EXPECT_EQ(r.exit.exit_code, 0);
  const std::vector<Argv> calls = Calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0],
            Cat({{"build", "--progress=plain", "--file=/ctx/Dockerfile"},
                 kLabels,
                 {"--secret=id=api_token,env=API_TOKEN", "--secret=id=musa_url,env=MUSA_URL",
                  "--tag=t:1", "--force-rm", "/ctx"}}));
  ExpectNoValueInAnyArgv({kUrl, kToken, "not-for-this-stage"});
  const std::map<std::string, std::string> env = CallFullEnv(1);
  EXPECT_EQ(env.at("DOCKER_BUILDKIT"), "1");
  EXPECT_EQ(env.at("MUSA_URL"), kUrl);
  EXPECT_EQ(env.at("API_TOKEN"), kToken);
  EXPECT_EQ(env.count("UNLISTED"), 0u);
  EXPECT_EQ(env.count("NOT_SUPPLIED"), 0u);
  // The push after it gets none.
  EXPECT_EQ(calls[1], (Argv{"push", "t:1"}));
  EXPECT_EQ(CallFullEnv(2).count("MUSA_URL"), 0u);
}

TEST_F(FakeDockerTest, BuildWithoutSecretsKeepsTheConfiguredBuilder) {
  v1::Assignment a = Assign();
  a.mutable_run()->add_secrets("NOT_SUPPLIED");  // named, but no value came
  a.mutable_run()->mutable_docker_build()->set_context("/ctx");
  a.mutable_run()->mutable_docker_build()->add_tags("t:1");
  Recorder r;
  RunToEnd(a, &r);
  EXPECT_EQ(Calls()[0][1], "--file=/ctx/Dockerfile");
  EXPECT_EQ(CallFullEnv(1).at("DOCKER_BUILDKIT"), "0");
}

TEST_F(FakeDockerTest, RunPassesSecretsAsFilesNeverArgvOrEnvironment) {
  v1::Assignment a = Assign();
  AddSecrets(&a);
  (*a.mutable_run()->mutable_env())["PLAIN"] = "p";
  a.mutable_run()->mutable_docker_run()->set_image("img");
  // The fake CLI copies the mounted files while the "container" runs: they
  // must exist then, with the value, and be gone afterwards.
  const std::string secrets_dir = (dir_ / "shm").string();
  fs::create_directories(secrets_dir);
  DockerOptions o = Options();
  o.secrets_dir = secrets_dir;
  const std::string attempt_dir = secrets_dir + "/musafarm-testfarm-secrets-42";
  WriteFake({{"run", absl::StrCat("cp ", attempt_dir, "/musa_url \"$D/seen-url\"; stat -c %a ",
                                  attempt_dir, " > \"$D/dir-mode\"")}});
  Recorder r;
  RunToEnd(a, &r, o);
  const std::vector<Argv> calls = Calls();
  ASSERT_EQ(calls.size(), 2u);
  EXPECT_EQ(calls[0], Cat({{"run", "--name=musafarm-42"},
                           kLabels,
                           {"--init",
                            "--mount=type=bind,source=" + attempt_dir +
                                "/api_token,target=/run/secrets/api_token,readonly",
                            "--mount=type=bind,source=" + attempt_dir +
                                "/musa_url,target=/run/secrets/musa_url,readonly",
                            "--env=MUSAFARM_ATTEMPT_ID=42", "--env=MUSAFARM_JOB_ID=7",
                            "--env=MUSAFARM_TASK_ID=7/dev/base", "--env=PLAIN=p", "img"}}));
  ExpectNoValueInAnyArgv({kUrl, kToken, "not-for-this-stage"});
  // Not in the CLI's environment either: the daemon would keep it.
  for (int call = 1; call <= 2; ++call) {
    for (const auto& [k, v] : CallFullEnv(call)) {
      EXPECT_EQ(v.find(kUrl), std::string::npos) << k;
      EXPECT_EQ(v.find(kToken), std::string::npos) << k;
    }
  }
  EXPECT_EQ(ReadFile((dir_ / "seen-url").string()), kUrl);
  EXPECT_EQ(ReadFile((dir_ / "dir-mode").string()), "700\n");
  EXPECT_FALSE(fs::exists(attempt_dir));
  EXPECT_EQ(calls[1], kRmF);
}

TEST(SecretFilesTest, RemoveStaleTakesOnlyThisFarmsLeftovers) {
  const std::string root = ::testing::TempDir() + "/secret_files_stale";
  fs::remove_all(root);
  fs::create_directories(root + "/musafarm-f1-secrets-7");
  fs::create_directories(root + "/musafarm-f2-secrets-7");
  fs::create_directories(root + "/other");
  EXPECT_EQ(SecretFiles::RemoveStale(root, "f1"), 1);
  EXPECT_FALSE(fs::exists(root + "/musafarm-f1-secrets-7"));
  EXPECT_TRUE(fs::exists(root + "/musafarm-f2-secrets-7"));
  EXPECT_TRUE(fs::exists(root + "/other"));
}

// Two agents of one name on one host (parallel test farms did this) each
// sweep only their own leftovers at start, never the other's live secrets.
TEST(SecretFilesTest, SameNamedAgentsWithOtherWorkDirsHaveOtherOwners) {
  const std::string root = ::testing::TempDir() + "/secret_files_owner";
  fs::remove_all(root);
  fs::create_directories(root);
  const std::string a = SecretFiles::OwnerFor("musafarm", "agent-b", root + "/farm1/agent-b");
  const std::string b = SecretFiles::OwnerFor("musafarm", "agent-b", root + "/farm2/agent-b");
  EXPECT_NE(a, b);
  EXPECT_EQ(a, SecretFiles::OwnerFor("musafarm", "agent-b", root + "/farm1/./agent-b"));
  EXPECT_TRUE(absl::StartsWith(a, "musafarm-agent-b-")) << a;
  SecretFiles live;
  ASSERT_TRUE(live.Write(root, b, 3, {{"MUSA_TOOLKITS_URL", "https://x"}}).ok());
  EXPECT_EQ(SecretFiles::RemoveStale(root, a), 0);
  EXPECT_TRUE(fs::exists(live.paths().at("MUSA_TOOLKITS_URL")));
}

TEST_F(FakeDockerTest, RefusesSecretNamesTheCliReadsItself) {
  DockerExecutor executor(Options());
  for (const char* name : {"DOCKER_HOST", "DOCKER_CONFIG", "LD_PRELOAD", "PATH", "HOME", "A-B"}) {
    v1::Assignment a = Assign();
    a.mutable_run()->mutable_docker_run()->set_image("img");
    a.mutable_run()->add_secrets(name);
    (*a.mutable_secrets())[name] = "value-xyz";
    Recorder r;
    const absl::Status s = executor.Start(a, workdir_, r.Callbacks()).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << name;
    EXPECT_THAT(std::string(s.message()), Not(HasSubstr("value-xyz")));
  }
  EXPECT_TRUE(Calls().empty());
}

TEST_F(FakeDockerTest, RunNamesTheGivenGpusByVendor) {
  v1::Assignment a = Assign();
  (*a.mutable_run()->mutable_env())["MTHREADS_VISIBLE_DEVICES"] = "all";  // ours wins
  a.mutable_run()->mutable_docker_run()->set_image("img");
  a.add_gpu_ids(0);
  a.add_gpu_ids(3);
  DockerOptions o = Options();
  o.gpu_vendor = "mthreads";
  Recorder r;
  RunToEnd(a, &r, o);
  EXPECT_THAT(Calls()[0],
              ElementsAre("run", "--name=musafarm-42", kLabels[0], kLabels[1], kLabels[2], "--init",
                          "--env=MTHREADS_VISIBLE_DEVICES=0,3", "--env=MUSAFARM_ATTEMPT_ID=42",
                          "--env=MUSAFARM_JOB_ID=7", "--env=MUSAFARM_TASK_ID=7/dev/base",
                          "--env=MUSAFARM_VISIBLE_GPUS=0,3", "img"));

  fs::remove_all(dir_ / "count");
  o.gpu_vendor = "nvidia";
  Recorder rn;
  RunToEnd(a, &rn, o);
  EXPECT_THAT(Calls()[0],
              ::testing::IsSupersetOf({std::string("--env=MTHREADS_VISIBLE_DEVICES=all"),
                                       std::string("--env=NVIDIA_VISIBLE_DEVICES=0,3"),
                                       std::string("--env=MUSAFARM_VISIBLE_GPUS=0,3")}));
}

TEST_F(FakeDockerTest, MissingCliIsAnErrorResultAndRemovalIsStillTried) {
  DockerOptions o = Options();
  o.cli = (dir_ / "no-such-docker").string();
  v1::Assignment a = Assign();
  a.mutable_run()->mutable_docker_run()->set_image("img");
  Recorder r;
  RunToEnd(a, &r, o);
  EXPECT_EQ(r.exit.exit_code, 127);
  EXPECT_THAT(r.exit.error, HasSubstr("cannot run"));
  EXPECT_THAT(r.Out(), HasSubstr("musafarm: cannot run '" + o.cli));
  EXPECT_THAT(r.Out(), HasSubstr("musafarm: docker rm -f musafarm-42 failed: cannot run"));
}

TEST_F(FakeDockerTest, CancelBeforeStartRunsNothingButRemoval) {
  WriteFake({{"run", kBlockingRun}});
  v1::Assignment a = Assign();
  a.mutable_run()->mutable_docker_run()->set_image("img");
  DockerExecutor executor(Options());
  Recorder r;
  auto exec = executor.Start(a, workdir_, r.Callbacks());
  ASSERT_TRUE(exec.ok());
  (*exec)->Cancel();
  ASSERT_TRUE(r.Wait());
  EXPECT_TRUE(r.exit.cancelled);
  // Either it was cancelled before `run` started or during it; removal always follows.
  const std::vector<Argv> calls = Calls();
  ASSERT_FALSE(calls.empty());
  EXPECT_TRUE(std::find(calls.begin(), calls.end(), kRmF) != calls.end());
}

TEST_F(FakeDockerTest, RejectsBadStages) {
  DockerExecutor executor(Options());
  auto start = [&](const v1::Assignment& a) {
    Recorder r;
    return executor.Start(a, workdir_, r.Callbacks()).status();
  };
  v1::Assignment exec = Assign();
  exec.mutable_run()->mutable_exec()->add_argv("true");
  EXPECT_EQ(start(exec).code(), absl::StatusCode::kUnimplemented);

  v1::Assignment run = Assign();
  run.mutable_run()->mutable_docker_run()->set_image("--privileged");
  EXPECT_EQ(start(run).code(), absl::StatusCode::kInvalidArgument);
  run.mutable_run()->mutable_docker_run()->set_image("img");
  v1::Mount* m = run.mutable_run()->mutable_docker_run()->add_mounts();
  m->set_source("/a:b");
  m->set_target("/x");
  EXPECT_EQ(start(run).code(), absl::StatusCode::kInvalidArgument);

  v1::Assignment build = Assign();
  build.mutable_run()->mutable_docker_build()->set_context("/ctx");
  EXPECT_EQ(start(build).code(), absl::StatusCode::kInvalidArgument);  // no tag
  build.mutable_run()->mutable_docker_build()->add_tags("-t");
  EXPECT_EQ(start(build).code(), absl::StatusCode::kInvalidArgument);

  v1::Assignment push = Assign();
  push.mutable_run()->mutable_docker_push();
  EXPECT_EQ(start(push).code(), absl::StatusCode::kInvalidArgument);  // no image
  EXPECT_TRUE(Calls().empty());
}

// ---------------------------------------------------------------------------
// Against a real private dockerd (scripts/docker/dockerd.sh) with a busybox
// image (scripts/docker/busybox-image.sh). One daemon for the whole suite.

constexpr char kCli[] = "/usr/bin/docker";
constexpr char kBaseImage[] = "musafarm/busybox:test";

using test_support::PrivateDockerd;
using test_support::Quote;
using test_support::Sh;

// Processes whose argv[0] is `argv0` (any when empty) and whose command line contains `needle`.
std::vector<std::string> Processes(const std::string& argv0, const std::string& needle) {
  std::vector<std::string> found;
  for (const auto& e : fs::directory_iterator("/proc")) {
    const std::string pid = e.path().filename().string();
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = ReadFile(e.path() / "cmdline");
    if (cmdline.empty()) continue;
    const std::string first = cmdline.substr(0, cmdline.find('\0'));
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if ((argv0.empty() || first == argv0) && absl::StrContains(cmdline, needle) &&
        pid != std::to_string(::getpid())) {
      found.push_back(pid + ": " + cmdline);
    }
  }
  return found;
}

class RealDockerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_ = PrivateDockerd::MissingTools(MF_SOURCE_DIR);
    if (!skip_.empty()) return;
    const absl::Time t0 = absl::Now();
    error_ = daemon_.Start(MF_SOURCE_DIR, absl::StrCat("/tmp/mf-dx-", ::getpid()), kBaseImage);
    daemon_dir_ = daemon_.dir();
    host_ = daemon_.host();
    std::cout << "[timing] dockerd start and busybox import "
              << absl::FormatDuration(absl::Now() - t0) << "\n";
  }
  static void TearDownTestSuite() { daemon_.Stop(); }

  void SetUp() override {
    // Not a skip: scripts/test.sh installs Docker; a missing engine must fail.
    ASSERT_TRUE(skip_.empty()) << skip_ << " (run scripts/docker/install.sh)";
    ASSERT_TRUE(error_.empty()) << error_;
    dir_ = fs::path(daemon_dir_) /
           absl::StrCat("t-", ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_ / "work");
    workdir_ = (dir_ / "work").string();
  }

  DockerOptions Options() {
    DockerOptions o;
    o.cli = kCli;
    o.docker_host = host_;
    o.farm = "mftest";
    o.kill_grace = absl::Seconds(5);
    return o;
  }
  // Attempt ids unique across concurrent test processes on this host.
  static uint64_t NewAttempt() { return static_cast<uint64_t>(::getpid()) * 100 + ++counter_; }

  // `docker ARGS...` against the private daemon; returns trimmed output.
  std::string Docker(const Argv& args, int* rc = nullptr) {
    std::string cmd = absl::StrCat(kCli, " -H ", Quote(host_));
    for (const std::string& a : args) absl::StrAppend(&cmd, " ", Quote(a));
    std::string out;
    const int r = Sh(cmd, &out);
    if (rc != nullptr) *rc = r;
    return std::string(absl::StripAsciiWhitespace(out));
  }
  std::string LabelledContainers(uint64_t attempt) {
    return Docker({"ps", "-aq", absl::StrCat("--filter=label=musafarm.attempt=", attempt)});
  }
  // Waits (bounded) for `pred`; returns how long it took, or nullopt.
  template <typename Pred>
  std::optional<absl::Duration> WaitFor(Pred pred, absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time t0 = absl::Now();
    while (absl::Now() - t0 < timeout) {
      if (pred()) return absl::Now() - t0;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return std::nullopt;
  }
  void WriteContext(const std::string& dockerfile) {
    fs::create_directories(dir_ / "ctx");
    std::ofstream(dir_ / "ctx" / "Dockerfile") << dockerfile;
  }

  static inline PrivateDockerd daemon_;
  static inline std::string skip_, error_, daemon_dir_, host_;
  static inline int counter_ = 0;
  fs::path dir_;
  std::string workdir_;
};

TEST_F(RealDockerTest, BuildsRunsCollectsAndPropagatesExitCode) {
  WriteContext(absl::StrCat("FROM ", kBaseImage,
                            "\nARG GREETING\nRUN echo \"built with $GREETING\" > /greeting\n"));
  const uint64_t build_attempt = NewAttempt();
  const std::string image = absl::StrCat("mf-test/app:", build_attempt);
  v1::Assignment b = Assign(build_attempt);
  b.mutable_run()->mutable_docker_build()->set_context((dir_ / "ctx").string());
  b.mutable_run()->mutable_docker_build()->set_network("none");
  b.mutable_run()->mutable_docker_build()->add_tags(image);
  (*b.mutable_run()->mutable_docker_build()->mutable_build_args())["GREETING"] = "hello";
  DockerExecutor executor(Options());
  Recorder rb;
  absl::Time t0 = absl::Now();
  {
    auto exec = executor.Start(b, workdir_, rb.Callbacks());
    ASSERT_TRUE(exec.ok()) << exec.status();
    ASSERT_TRUE(rb.Wait(absl::Seconds(120)));
  }
  std::cout << "[timing] real docker build " << absl::FormatDuration(absl::Now() - t0) << "\n";
  ASSERT_EQ(rb.exit.exit_code, 0) << rb.Out();
  EXPECT_EQ(Docker({"image", "inspect", "--format",
                    "{{index .Config.Labels \"musafarm.attempt\"}} "
                    "{{index .Config.Labels \"musafarm.farm\"}}",
                    image}),
            absl::StrCat(build_attempt, " mftest"));

  const uint64_t attempt = NewAttempt();
  v1::Assignment r = Assign(attempt);
  (*r.mutable_run()->mutable_env())["FOO"] = "bar";
  v1::DockerRunStage* d = r.mutable_run()->mutable_docker_run();
  d->set_image(image);
  d->set_network("none");
  for (const char* c : {"/bin/sh", "-c",
                        "cat /greeting; echo \"$MUSAFARM_TASK_ID $FOO\" > /out.txt; "
                        "mkdir /res && echo r > /res/r.txt; exit 5"}) {
    d->add_command(c);
  }
  d->add_collect("/out.txt");
  d->add_collect("/res");
  d->add_collect("/missing.txt");
  Recorder rr;
  t0 = absl::Now();
  {
    auto exec = executor.Start(r, workdir_, rr.Callbacks());
    ASSERT_TRUE(exec.ok()) << exec.status();
    ASSERT_TRUE(rr.Wait(absl::Seconds(60)));
  }
  std::cout << "[timing] real docker run + 3 cp + rm " << absl::FormatDuration(absl::Now() - t0)
            << "\n";
  EXPECT_EQ(rr.exit.exit_code, 5) << rr.Out();
  EXPECT_THAT(rr.Out(), HasSubstr("built with hello\n"));
  EXPECT_THAT(rr.Out(), HasSubstr("musafarm: /missing.txt not found in the container\n"));
  ASSERT_EQ(rr.exit.files.size(), 2u) << rr.Out();
  EXPECT_EQ(rr.exit.files[0].name, "out.txt");
  EXPECT_EQ(ReadFile(rr.exit.files[0].host_path), "7/dev/base bar\n");
  EXPECT_EQ(rr.exit.files[1].name, "res");
  EXPECT_EQ(ReadFile(fs::path(rr.exit.files[1].host_path) / "r.txt"), "r\n");
  EXPECT_EQ(LabelledContainers(attempt), "");
  EXPECT_EQ(LabelledContainers(build_attempt), "");
}

TEST_F(RealDockerTest, SecretsReachABuildKitRunMountAndAContainerSecretFile) {
  const std::string url = "https://user:pw@example.com/musa.git";
  // The test bakes the value into the image (upper-cased) only to read it back.
  WriteContext(absl::StrCat("FROM ", kBaseImage,
                            "\nRUN --mount=type=secret,id=musa_url "
                            "tr a-z A-Z < /run/secrets/musa_url > /upper\n"));
  const uint64_t build_attempt = NewAttempt();
  const std::string image = absl::StrCat("mf-test/secret:", build_attempt);
  v1::Assignment b = Assign(build_attempt);
  b.mutable_run()->mutable_docker_build()->set_context((dir_ / "ctx").string());
  b.mutable_run()->mutable_docker_build()->set_network("none");
  b.mutable_run()->mutable_docker_build()->add_tags(image);
  b.mutable_run()->add_secrets("MUSA_URL");
  (*b.mutable_secrets())["MUSA_URL"] = url;
  DockerExecutor executor(Options());  // options.buildkit is false: the secret turns it on
  Recorder rb;
  {
    auto exec = executor.Start(b, workdir_, rb.Callbacks());
    ASSERT_TRUE(exec.ok()) << exec.status();
    ASSERT_TRUE(rb.Wait(absl::Seconds(120)));
  }
  ASSERT_EQ(rb.exit.exit_code, 0) << rb.Out();

  v1::Assignment r = Assign(NewAttempt());
  r.mutable_run()->add_secrets("MUSA_URL");
  (*r.mutable_secrets())["MUSA_URL"] = url;
  v1::DockerRunStage* d = r.mutable_run()->mutable_docker_run();
  d->set_image(image);
  d->set_network("none");
  for (const char* c : {"/bin/sh", "-c", "cat /upper; echo \"run=$(cat /run/secrets/musa_url)\""})
    d->add_command(c);
  Recorder rr;
  {
    auto exec = executor.Start(r, workdir_, rr.Callbacks());
    ASSERT_TRUE(exec.ok()) << exec.status();
    ASSERT_TRUE(rr.Wait(absl::Seconds(60)));
  }
  EXPECT_EQ(rr.exit.exit_code, 0) << rr.Out();
  // The secret file holds the value exactly, without a newline.
  EXPECT_EQ(rr.Out(), "HTTPS://USER:PW@EXAMPLE.COM/MUSA.GITrun=" + url + "\n");
  // The daemon kept nothing of it: the container's config had no such env.
  EXPECT_EQ(Docker({"ps", "-a", "--filter", "label=musafarm.farm=mftest", "-q"}), "");
}

TEST_F(RealDockerTest, BuildPushesEveryTagAndPushStageStopsAtFirstFailure) {
  test_support::PrivateRegistry registry;  // stopped when it goes
  const std::string started = registry.Start(MF_SOURCE_DIR, (dir_ / "registry").string());
  ASSERT_EQ(started, "");
  const std::string& addr = registry.address();

  WriteContext(absl::StrCat("FROM ", kBaseImage, "\nRUN echo pushed > /p\n"));
  const uint64_t attempt = NewAttempt();
  v1::Assignment b = Assign(attempt);
  v1::DockerBuildStage* build = b.mutable_run()->mutable_docker_build();
  build->set_context((dir_ / "ctx").string());
  build->set_network("none");
  build->add_tags(addr + "/mf/app:1");
  build->add_tags(addr + "/mf/app:latest");
  build->set_push(true);
  DockerExecutor executor(Options());
  Recorder rb;
  absl::Time t0 = absl::Now();
  {
    auto exec = executor.Start(b, workdir_, rb.Callbacks());
    ASSERT_TRUE(exec.ok());
    ASSERT_TRUE(rb.Wait(absl::Seconds(120)));
  }
  std::cout << "[timing] build + push of 2 tags " << absl::FormatDuration(absl::Now() - t0) << "\n";
  ASSERT_EQ(rb.exit.exit_code, 0) << rb.Out();
  EXPECT_THAT(rb.Out(), HasSubstr("1: digest: sha256:"));
  EXPECT_THAT(rb.Out(), HasSubstr("latest: digest: sha256:"));

  v1::Assignment p = Assign(NewAttempt());
  p.mutable_run()->mutable_docker_push()->add_images(addr + "/mf/app:1");
  p.mutable_run()->mutable_docker_push()->add_images(addr + "/mf/nope:1");  // not built
  p.mutable_run()->mutable_docker_push()->add_images(addr + "/mf/app:latest");
  Recorder rp;
  {
    auto exec = executor.Start(p, workdir_, rp.Callbacks());
    ASSERT_TRUE(exec.ok());
    ASSERT_TRUE(rp.Wait(absl::Seconds(60)));
  }
  EXPECT_NE(rp.exit.exit_code, 0) << rp.Out();
  EXPECT_THAT(rp.Out(), HasSubstr("1: digest: sha256:"));
  EXPECT_THAT(rp.Out(), Not(HasSubstr("latest: digest:")));  // stopped at the failure
}

TEST_F(RealDockerTest, CancelOfSleepingRunLeavesNoContainerAndNoCli) {
  const uint64_t attempt = NewAttempt();
  v1::Assignment a = Assign(attempt);
  a.mutable_run()->mutable_docker_run()->set_image(kBaseImage);
  a.mutable_run()->mutable_docker_run()->set_network("none");
  a.mutable_run()->mutable_docker_run()->add_command("sleep");
  a.mutable_run()->mutable_docker_run()->add_command("600");
  DockerExecutor executor(Options());
  Recorder r;
  auto exec = executor.Start(a, workdir_, r.Callbacks());
  ASSERT_TRUE(exec.ok());
  const std::string name = DockerContainerName(attempt);
  ASSERT_TRUE(WaitFor([&] {
    return !Docker({"ps", "-q", "--filter=name=" + name, "--filter=status=running"}).empty();
  }));
  const absl::Time t0 = absl::Now();
  (*exec)->Cancel();
  ASSERT_TRUE(r.Wait());
  std::cout << "[timing] cancel of a running container " << absl::FormatDuration(absl::Now() - t0)
            << "\n";
  EXPECT_TRUE(r.exit.cancelled);
  EXPECT_LT(absl::Now() - t0, absl::Seconds(5));
  // 137: SIGKILL from `docker kill`. (A SIGTERM to the CLI would also end it,
  // through --sig-proxy and --init, but as 143.)
  EXPECT_EQ(r.exit.exit_code, 137) << r.Out();
  EXPECT_EQ(LabelledContainers(attempt), "");
  EXPECT_THAT(Processes(kCli, name), ::testing::IsEmpty());
}

TEST_F(RealDockerTest, TimeoutOfRunKillsAndRemovesTheContainer) {
  const uint64_t attempt = NewAttempt();
  v1::Assignment a = Assign(attempt);
  a.mutable_run()->set_timeout_seconds(2);
  a.mutable_run()->mutable_docker_run()->set_image(kBaseImage);
  a.mutable_run()->mutable_docker_run()->set_network("none");
  a.mutable_run()->mutable_docker_run()->add_command("sleep");
  a.mutable_run()->mutable_docker_run()->add_command("600");
  DockerExecutor executor(Options());
  Recorder r;
  const absl::Time t0 = absl::Now();
  auto exec = executor.Start(a, workdir_, r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.Wait());
  std::cout << "[timing] run with a 2s timeout ended after "
            << absl::FormatDuration(absl::Now() - t0) << "\n";
  EXPECT_TRUE(r.exit.timed_out);
  EXPECT_EQ(LabelledContainers(attempt), "");
  EXPECT_THAT(Processes(kCli, DockerContainerName(attempt)), ::testing::IsEmpty());
}

TEST_F(RealDockerTest, CancelDuringSlowBuildLeavesNoContainerAndNoBuildProcess) {
  const uint64_t attempt = NewAttempt();
  const std::string marker = absl::StrCat("marker-", attempt);
  // busybox sh execs the last command of `sh -c`: the trailing echo keeps the
  // step's sh (whose command line has the marker) alive as sleep's parent.
  WriteContext(absl::StrCat("FROM ", kBaseImage,
                            "\nRUN echo \"running-$((1+1))\" && sleep 600; echo ", marker, "\n"));
  v1::Assignment a = Assign(attempt);
  a.mutable_run()->mutable_docker_build()->set_context((dir_ / "ctx").string());
  a.mutable_run()->mutable_docker_build()->set_network("none");
  a.mutable_run()->mutable_docker_build()->add_tags(absl::StrCat("mf-test/slow:", attempt));
  DockerExecutor executor(Options());
  Recorder r;
  auto exec = executor.Start(a, workdir_, r.Callbacks());
  ASSERT_TRUE(exec.ok());
  ASSERT_TRUE(r.WaitOutput("running-2", absl::Seconds(60))) << r.Out();
  // The step's container (this daemon runs nothing else) and its processes,
  // found by the container id in their cgroup.
  const std::string step = Docker({"ps", "-q", "--no-trunc"});
  ASSERT_EQ(step.size(), 64u) << step;
  auto step_processes = [&] {
    std::vector<std::string> found = Processes("", marker);
    for (const auto& e : fs::directory_iterator("/proc")) {
      const std::string pid = e.path().filename().string();
      if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
      if (absl::StrContains(ReadFile(e.path() / "cgroup"), step)) found.push_back(pid);
    }
    return found;
  };
  ASSERT_GE(step_processes().size(), 3u);  // sh in /proc twice (marker, cgroup), sleep
  const absl::Time t0 = absl::Now();
  (*exec)->Cancel();
  ASSERT_TRUE(r.Wait());
  std::cout << "[timing] cancel of a build: CLI gone after "
            << absl::FormatDuration(absl::Now() - t0) << "\n";
  EXPECT_TRUE(r.exit.cancelled);
  EXPECT_EQ(LabelledContainers(attempt), "");
  EXPECT_THAT(Processes(kCli, absl::StrCat("musafarm.attempt=", attempt)), ::testing::IsEmpty());
  // The daemon kills and removes the step's container once its client is gone
  // (the step's container does not carry our labels: the legacy builder adds
  // --label as a last LABEL step).
  const auto gone = WaitFor([&] {
    return Docker({"ps", "-aq"}).empty() && step_processes().empty();
  });
  ASSERT_TRUE(gone.has_value()) << "left: " << Docker({"ps", "-a"}) << "\n"
                                << absl::StrJoin(step_processes(), "\n");
  std::cout << "[timing] ... step container and its processes gone " << absl::FormatDuration(*gone)
            << " after that\n";
}

}  // namespace
}  // namespace musafarm::agent
