#include "agent/executor/task_env.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

v1::Assignment WithSecrets(std::vector<std::string> names,
                           std::map<std::string, std::string> values) {
  v1::Assignment a;
  for (const std::string& n : names) a.mutable_run()->add_secrets(n);
  for (const auto& [k, v] : values) (*a.mutable_secrets())[k] = v;
  return a;
}

TEST(TaskEnvTest, StageGetsOnlySecretsItNamesThatWereSupplied) {
  const v1::Assignment a =
      WithSecrets({"MUSA_URL", "NOT_SUPPLIED"}, {{"MUSA_URL", "https://t@h/r"}, {"OTHER", "o"}});
  absl::StatusOr<EnvMap> secrets = StageSecrets(a);
  ASSERT_TRUE(secrets.ok()) << secrets.status();
  EXPECT_THAT(*secrets, ElementsAre(Pair("MUSA_URL", "https://t@h/r")));
  // Every value is redacted, named by the stage or not.
  EXPECT_THAT(SecretValues(a), UnorderedElementsAre("https://t@h/r", "o"));
  EXPECT_THAT(*StageSecrets(v1::Assignment()), IsEmpty());
}

TEST(TaskEnvTest, MaskFormsCoverEveryValueWithItsDeclaredForms) {
  v1::Assignment a = WithSecrets({"URL"}, {{"URL", "https://bot:pa%2Fss@h/"}, {"PLAIN", "v w"}});
  (*a.mutable_run()->mutable_secret_forms())["URL"].add_forms("base64");
  const std::vector<std::string> forms = SecretMaskForms(a);
  for (const char* f : {"https://bot:pa%2Fss@h/", "https%3A%2F%2Fbot%3Apa%252Fss%40h%2F",
                        "bot:pa%2Fss", "pa/ss", "pa%2fss", "aHR0cHM6Ly9ib3Q6cGElMkZzc0BoLw", "v w",
                        "v%20w", "v+w"}) {
    EXPECT_THAT(forms, ::testing::Contains(f));
  }
  // base64 only where declared.
  EXPECT_THAT(forms, Not(::testing::Contains("diB3")));
}

TEST(TaskEnvTest, RegistryCredentialsAreMaskedInBase64Too) {
  v1::Assignment a = WithSecrets({"HARBOR"}, {{"HARBOR", "robot:hunter22"}});
  a.mutable_run()->mutable_docker_push()->set_registry_auth("HARBOR");
  // As written into the attempt's DOCKER_CONFIG (config.json's "auth").
  EXPECT_THAT(SecretMaskForms(a), ::testing::Contains("cm9ib3Q6aHVudGVyMjI"));
}

TEST(TaskEnvTest, SecretNamesMustBeEnvironmentNames) {
  for (const char* bad : {"", "1X", "A-B", "A=B", "A B"}) {
    const absl::StatusOr<EnvMap> s = StageSecrets(WithSecrets({bad}, {{bad, "value-xyz"}}));
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(s.status().message()), Not(::testing::HasSubstr("value-xyz")));
  }
  EXPECT_TRUE(StageSecrets(WithSecrets({"_a1", "Z"}, {})).ok());
}

TEST(TaskEnvTest, GpuVariablesByVendor) {
  v1::Assignment a;
  EXPECT_THAT(GpuEnv("mthreads", a), IsEmpty());  // no GPUs given: nothing to say
  a.add_gpu_ids(2);
  a.add_gpu_ids(0);
  EXPECT_THAT(GpuEnv("mthreads", a), ElementsAre(Pair("MTHREADS_VISIBLE_DEVICES", "2,0"),
                                                 Pair("MUSAFARM_VISIBLE_GPUS", "2,0")));
  EXPECT_THAT(GpuEnv("nvidia", a), ElementsAre(Pair("MUSAFARM_VISIBLE_GPUS", "2,0"),
                                               Pair("NVIDIA_VISIBLE_DEVICES", "2,0")));
  for (const char* other : {"", "acme"}) {
    EXPECT_THAT(GpuEnv(other, a), ElementsAre(Pair("MTHREADS_VISIBLE_DEVICES", "2,0"),
                                              Pair("MUSAFARM_VISIBLE_GPUS", "2,0")))
        << other;
  }
  // Host processes also get the variable their runtime reads.
  EXPECT_THAT(GpuEnv("mthreads", a, /*host_process=*/true),
              ElementsAre(Pair("MTHREADS_VISIBLE_DEVICES", "2,0"),
                          Pair("MUSAFARM_VISIBLE_GPUS", "2,0"), Pair("MUSA_VISIBLE_DEVICES", "2,0")));
  EXPECT_THAT(GpuEnv("nvidia", a, /*host_process=*/true),
              ElementsAre(Pair("CUDA_VISIBLE_DEVICES", "2,0"), Pair("MUSAFARM_VISIBLE_GPUS", "2,0"),
                          Pair("NVIDIA_VISIBLE_DEVICES", "2,0")));
}

}  // namespace
}  // namespace musafarm::agent
