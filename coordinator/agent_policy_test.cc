#include "coordinator/agent_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace musafarm::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

constexpr char kPolicy[] = R"(agents:
  - match: "gpu-*"                 # the GPU hosts
    labels: ["role=*", "gpu"]
    kinds: [exec, shell, docker_build, docker_run, docker_push]
    privileged: true
    host_mounts: true
    secrets: true
  - match: "*"
    kinds: [exec, docker_build, docker_run]
)";

AgentPolicy MustParse(const std::string& yaml) {
  absl::StatusOr<AgentPolicy> p = AgentPolicy::Parse(yaml, "policy.yaml");
  EXPECT_TRUE(p.ok()) << p.status();
  return p.ok() ? *p : AgentPolicy::Defaults();
}

std::string ParseError(const std::string& yaml) {
  absl::StatusOr<AgentPolicy> p = AgentPolicy::Parse(yaml, "policy.yaml");
  EXPECT_FALSE(p.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(p.status())) << p.status();
  return std::string(p.status().message());
}

TEST(AgentPolicyTest, FirstMatchingRuleWins) {
  const AgentPolicy policy = MustParse(kPolicy);
  EXPECT_EQ(policy.rule_count(), 2u);
  const Grants gpu = policy.For("gpu-7");
  EXPECT_EQ(gpu.rule, "gpu-*");
  EXPECT_THAT(gpu.kinds, ElementsAre(v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_BUILD,
                                     v1::STAGE_KIND_DOCKER_RUN, v1::STAGE_KIND_DOCKER_PUSH));
  EXPECT_TRUE(gpu.shell && gpu.privileged && gpu.host_mounts && gpu.secrets);

  const Grants other = policy.For("cpu-1");
  EXPECT_EQ(other.rule, "*");
  EXPECT_THAT(other.kinds, ElementsAre(v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_BUILD,
                                       v1::STAGE_KIND_DOCKER_RUN));
  EXPECT_FALSE(other.shell || other.privileged || other.host_mounts || other.secrets);
  EXPECT_THAT(other.labels, IsEmpty());
}

TEST(AgentPolicyTest, AnAgentNoRuleMatchesGetsNothingThatNeedsTrust) {
  const AgentPolicy policy = MustParse("agents:\n  - match: \"gpu-*\"\n    secrets: true\n");
  const Grants g = policy.For("laptop");
  EXPECT_EQ(g.rule, "");
  EXPECT_EQ(g.kinds, DefaultKinds());
  EXPECT_FALSE(g.shell || g.privileged || g.host_mounts || g.secrets);
  EXPECT_TRUE(Permits(g, v1::STAGE_KIND_DOCKER_PUSH, {}));
  TrustNeeds shell;
  shell.shell = true;
  EXPECT_FALSE(Permits(g, v1::STAGE_KIND_EXEC, shell));
}

TEST(AgentPolicyTest, DefaultsAndAllowAll) {
  const Grants none = AgentPolicy::Defaults().For("a");
  TrustNeeds all;
  all.shell = all.privileged = all.host_mounts = all.secrets = true;
  EXPECT_FALSE(Permits(none, v1::STAGE_KIND_EXEC, all));
  EXPECT_THAT(TrustedLabels(none, {"gpu", "role=x"}), IsEmpty());

  const Grants any = AgentPolicy::AllowAll().For("a");
  EXPECT_TRUE(Permits(any, v1::STAGE_KIND_EXEC, all));
  EXPECT_TRUE(Permits(any, v1::STAGE_KIND_DOCKER_PUSH, {}));
  EXPECT_THAT(TrustedLabels(any, {"gpu", "role=x"}), ElementsAre("gpu", "role=x"));

  EXPECT_EQ(AgentPolicy::Effective(std::nullopt, /*insecure=*/true).For("a").secrets, true);
  EXPECT_EQ(AgentPolicy::Effective(std::nullopt, /*insecure=*/false).For("a").secrets, false);
  EXPECT_EQ(AgentPolicy::Effective(MustParse(kPolicy), /*insecure=*/true).For("a").secrets, false);
}

TEST(AgentPolicyTest, PermitsNamesWhatIsMissing) {
  Grants g;
  g.kinds = {v1::STAGE_KIND_EXEC};
  g.secrets = true;
  TrustNeeds needs;
  needs.secrets = true;
  EXPECT_TRUE(Permits(g, v1::STAGE_KIND_EXEC, needs));
  needs.privileged = true;
  needs.host_mounts = true;
  std::string why;
  EXPECT_FALSE(Permits(g, v1::STAGE_KIND_DOCKER_RUN, needs, &why));
  EXPECT_EQ(why, "kind docker_run, privileged, host_mounts");
  TrustNeeds shell;
  shell.shell = true;
  EXPECT_FALSE(Permits(g, v1::STAGE_KIND_EXEC, shell, &why));
  EXPECT_EQ(why, "kind shell");
  g.shell = true;
  EXPECT_TRUE(Permits(g, v1::STAGE_KIND_EXEC, shell));
}

TEST(AgentPolicyTest, LabelPatternsMatchTheWholeLabelOrAKey) {
  Grants g;
  g.labels = {"role=*", "gpu"};
  EXPECT_THAT(TrustedLabels(g, {"role=build", "gpu=s4000", "gpu", "os=linux", "gpus=2"}),
              ElementsAre("role=build", "gpu=s4000", "gpu"));
  g.labels = {"os=linux"};
  EXPECT_THAT(TrustedLabels(g, {"os=linux", "os=windows", "os"}), ElementsAre("os=linux"));
}

TEST(AgentPolicyTest, TrustNeedsOfAStage) {
  v1::StageSpec exec;
  exec.mutable_exec()->add_argv("true");
  EXPECT_FALSE(TrustNeedsOf(exec).any());
  exec.mutable_exec()->set_shell(true);
  EXPECT_TRUE(TrustNeedsOf(exec).shell);

  v1::StageSpec run;
  run.mutable_docker_run()->set_image("debian");
  EXPECT_FALSE(TrustNeedsOf(run).any());
  run.mutable_docker_run()->set_privileged(true);
  EXPECT_TRUE(TrustNeedsOf(run).privileged);
  run.mutable_docker_run()->add_mounts()->set_source("/data");
  EXPECT_TRUE(TrustNeedsOf(run).host_mounts);

  v1::StageSpec push;
  push.mutable_docker_push()->add_images("reg/x:1");
  EXPECT_FALSE(TrustNeedsOf(push).any());
  push.mutable_docker_push()->set_registry_auth("REGISTRY");  // a credential for the agent
  EXPECT_TRUE(TrustNeedsOf(push).secrets);

  v1::StageSpec build;
  build.mutable_docker_build()->add_tags("x");
  build.add_secrets("TOKEN");
  const TrustNeeds needs = TrustNeedsOf(build);
  EXPECT_TRUE(needs.secrets);
  EXPECT_FALSE(needs.shell || needs.privileged || needs.host_mounts);
}

TEST(AgentPolicyTest, GrantsProtoCarriesEveryField) {
  const v1::AgentGrants p = GrantsProto(MustParse(kPolicy).For("gpu-1"));
  EXPECT_EQ(p.rule(), "gpu-*");
  EXPECT_EQ(p.kinds_size(), 4);
  EXPECT_TRUE(p.shell() && p.privileged() && p.host_mounts() && p.secrets());
}

TEST(AgentPolicyTest, OmittedKindsAreTheDefaults) {
  const Grants g = MustParse("agents:\n  - match: a\n    secrets: true\n").For("a");
  EXPECT_EQ(g.kinds, DefaultKinds());
  EXPECT_FALSE(g.shell);
  EXPECT_TRUE(g.secrets);
}

TEST(AgentPolicyTest, AnEmptyListGivesEveryoneTheDefaults) {
  EXPECT_EQ(MustParse("agents: []\n").For("x").rule, "");
}

TEST(AgentPolicyTest, ErrorsNameFileLineAndKey) {
  EXPECT_EQ(ParseError("agents:\n  - match: a\n    privileges: true\n"),
            "policy.yaml:3:5: agents[0].privileges: unknown field 'privileges' (allowed: match, "
            "labels, kinds, privileged, host_mounts, secrets)");
  EXPECT_THAT(ParseError("agents:\n  - match: a\n    kinds: [exec, docker]\n"),
              HasSubstr("policy.yaml:3:19: agents[0].kinds[1]: unknown stage kind 'docker'"));
  EXPECT_THAT(ParseError("agents:\n  - labels: [gpu]\n"),
              HasSubstr("policy.yaml:2:5: agents[0]: a rule needs 'match'"));
  EXPECT_THAT(ParseError("agents:\n  - match: a\n    secrets: yes\n"),
              HasSubstr("policy.yaml:3:14: agents[0].secrets: expected true or false"));
  EXPECT_THAT(ParseError("rules: []\n"), HasSubstr("policy.yaml:1:1: rules: unknown field"));
  EXPECT_THAT(ParseError("agents: {a: 1}\n"),
              HasSubstr("policy.yaml:1:9: agents: expected a list of rules, got a mapping"));
  EXPECT_THAT(ParseError("agents: [\n"), HasSubstr("policy.yaml:"));
  EXPECT_THAT(ParseError(""), HasSubstr("expected one YAML document"));
  // yaml-cpp 0.7's LoadAll never returns on ",": the policy is read through
  // YamlReader::LoadDocument, which counts documents with a bound.
  // (It holds no document; before, this line never returned.)
  EXPECT_THAT(ParseError(","), HasSubstr("the file is empty; expected one YAML document"));
}

TEST(AgentPolicyTest, LoadNamesAFileItCannotRead) {
  absl::StatusOr<AgentPolicy> p = AgentPolicy::Load("/nonexistent/policy.yaml");
  ASSERT_FALSE(p.ok());
  EXPECT_THAT(std::string(p.status().message()), HasSubstr("/nonexistent/policy.yaml"));
}

}  // namespace
}  // namespace musafarm::coordinator
