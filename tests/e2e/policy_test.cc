// The agent policy (issue 10, point 4) through the real binaries: which agents
// get stages that need trust, which declared labels count for them, SIGHUP
// reloads, and a bad file at start.
#include <signal.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

constexpr char kPolicy[] = R"(agents:
  - match: "trusted-*"
    labels: ["pool=*"]
    kinds: [exec, shell]
    secrets: true
)";

// The same, trusting the `gpu` label too.
constexpr char kPolicyWithGpu[] = R"(agents:
  - match: "trusted-*"
    labels: ["pool=*", "gpu"]
    kinds: [exec, shell]
    secrets: true
)";

// Stages that need trust (a secret, a shell) and one that does not, all
// asking for a label both agents declare.
constexpr char kPipeline[] = R"(
secrets: [TOKEN]
stages:
  - name: secret
    labels: [pool=a]
    secrets: [TOKEN]
    exec: ["sh", "-c", "test -n \"$TOKEN\""]
  - name: script
    labels: [pool=a]
    shell: "echo from a shell"
  - name: plain
    labels: [pool=a]
    exec: ["true"]
)";

// A label only trusted-1 declares, and the policy does not (yet) trust.
constexpr char kGpuPipeline[] = R"(
secrets: [TOKEN]
stages:
  - name: secret-on-gpu
    labels: [gpu]
    secrets: [TOKEN]
    exec: ["true"]
  - name: plain-on-gpu
    labels: [gpu]
    exec: ["true"]
)";

// Each test runs with TLS on (the issue's acceptance: names come from
// certificates) and with --insecure (names as declared; the policy still holds).
FarmOptions Mode(bool tls) {
  FarmOptions o;
  o.tls = tls;
  return o;
}

class PolicyE2eTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    // `submit --secret TOKEN` takes the value from the CLI's environment,
    // which the CLI inherits from this process.
    ::setenv("TOKEN", "policy-e2e-token", 1);
    policy_ = farm_.dir() + "/policy.yaml";
    WriteFile(policy_, kPolicy);
  }
  void StartFarm() {
    farm_.StartCoordinator({"--agent-policy", policy_});
    farm_.StartAgent("stranger", {"pool=a"}, 2);
    farm_.StartAgent("trusted-1", {"pool=a", "gpu"}, 2);
    ASSERT_TRUE(WaitFor([&] { return farm_.Agents().size() == 2; })) << "agents did not register";
  }
  std::string SubmitWithSecret(const std::string& name, const std::string& yaml) {
    CliResult r =
        farm_.Cli({"submit", farm_.WritePipeline(name, yaml), "--secret", "TOKEN", "-o", "json"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    v1::Job job;
    google::protobuf::util::JsonParseOptions options;
    options.ignore_unknown_fields = true;
    EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(r.out, &job, options).ok()) << r.out;
    return job.id();
  }
  std::string AgentOf(const std::string& job, const std::string& task) {
    absl::StatusOr<v1::Job> j = farm_.Job(job);
    if (!j.ok()) return "";
    const v1::Task* t = FindTask(*j, task);
    return t == nullptr ? "" : t->agent();
  }

  Farm farm_{Mode(GetParam())};
  std::string policy_;
};

TEST_P(PolicyE2eTest, AnAgentMissingFromThePolicyGetsNoStageThatNeedsTrust) {
  StartFarm();
  const std::string job = SubmitWithSecret("trust.yaml", kPipeline);
  ASSERT_FALSE(job.empty());
  ASSERT_TRUE(farm_.WaitForJobEnd(job));
  absl::StatusOr<v1::Job> done = farm_.Job(job);
  ASSERT_TRUE(done.ok()) << done.status();
  EXPECT_EQ(done->state(), v1::JOB_STATE_SUCCEEDED);
  // Both declare pool=a; only the policy's agent gets the secret and the shell.
  EXPECT_EQ(AgentOf(job, "secret"), "trusted-1");
  EXPECT_EQ(AgentOf(job, "script"), "trusted-1");

  CliResult agents = farm_.Cli({"agents"});
  ASSERT_EQ(agents.exit_code, 0) << agents.err;
  EXPECT_TRUE(absl::StrContains(
      agents.out, "stranger may run exec,docker_build,docker_run,docker_push (no policy rule); "
                  "untrusted labels: pool=a"))
      << agents.out;
  EXPECT_TRUE(absl::StrContains(agents.out,
                                "trusted-1 may run exec,shell with secrets (policy rule "
                                "'trusted-*'); untrusted labels: gpu"))
      << agents.out;
}

TEST_P(PolicyE2eTest, AnUngrantedLabelAttractsNoStageThatNeedsTrustUntilSighupReloadsThePolicy) {
  StartFarm();
  const std::string job = SubmitWithSecret("gpu.yaml", kGpuPipeline);
  ASSERT_FALSE(job.empty());
  // The ordinary stage follows the declared label; the one with a secret waits.
  ASSERT_TRUE(farm_.WaitForTaskState(job, "plain-on-gpu", v1::TASK_STATE_SUCCEEDED));
  EXPECT_EQ(AgentOf(job, "plain-on-gpu"), "trusted-1");
  {
    absl::StatusOr<v1::Job> j = farm_.Job(job);
    ASSERT_TRUE(j.ok());
    ASSERT_NE(FindTask(*j, "secret-on-gpu"), nullptr);
    EXPECT_EQ(FindTask(*j, "secret-on-gpu")->state(), v1::TASK_STATE_QUEUED);
  }

  // A file that does not parse keeps the policy in force.
  WriteFile(policy_, "agents:\n  - match: \"trusted-*\"\n    labelz: [gpu]\n");
  farm_.coordinator()->Signal(SIGHUP);
  ASSERT_TRUE(WaitFor([&] {
    return absl::StrContains(farm_.coordinator()->Output(), "agent policy not reloaded");
  })) << farm_.coordinator()->Output();
  EXPECT_TRUE(absl::StrContains(farm_.coordinator()->Output(), "policy.yaml:3:5: agents[0].labelz"))
      << farm_.coordinator()->Output();
  ASSERT_TRUE(farm_.coordinator()->Running());
  {
    absl::StatusOr<v1::Job> j = farm_.Job(job);
    ASSERT_TRUE(j.ok());
    EXPECT_EQ(FindTask(*j, "secret-on-gpu")->state(), v1::TASK_STATE_QUEUED);
  }

  // The operator trusts the label and reloads: the waiting stage goes.
  WriteFile(policy_, kPolicyWithGpu);
  farm_.coordinator()->Signal(SIGHUP);
  ASSERT_TRUE(farm_.WaitForJobEnd(job));
  EXPECT_EQ(AgentOf(job, "secret-on-gpu"), "trusted-1");
  EXPECT_EQ(farm_.Job(job)->state(), v1::JOB_STATE_SUCCEEDED);
}

TEST_P(PolicyE2eTest, ABadPolicyFileStopsTheCoordinatorWithExitTwoNamingFileLineAndKey) {
  WriteFile(policy_, "agents:\n  - match: a\n    privileges: true\n");
  auto p = Process::Start({MF_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--data-dir",
                           farm_.data_dir(), "--agent-policy", policy_, "--insecure"},
                          farm_.dir() + "/bad-policy.log");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ((*p)->Wait(absl::Seconds(30)), 2) << (*p)->Output();
  EXPECT_TRUE(absl::StrContains((*p)->Output(),
                                absl::StrCat(policy_, ":3:5: agents[0].privileges: unknown field")))
      << (*p)->Output();
}

INSTANTIATE_TEST_SUITE_P(Modes, PolicyE2eTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& mode) {
                           return mode.param ? "Tls" : "Insecure";
                         });

}  // namespace
}  // namespace musafarm::e2e
