#include "coordinator/host_health.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using ::testing::ElementsAre;

TEST(HostHealthTest, AHeartbeatSaysWhatChangedAndWhatWasFreed) {
  v1::Agent agent;
  agent.add_executor_kinds(v1::STAGE_KIND_EXEC);
  agent.add_executor_kinds(v1::STAGE_KIND_DOCKER_RUN);
  agent.set_gpus(2);
  v1::Heartbeat beat;
  EXPECT_FALSE(ApplyHostHealth(beat, &agent).changed);

  beat.add_unavailable_kinds(v1::STAGE_KIND_DOCKER_RUN);
  beat.set_kinds_unavailable_reason("docker daemon unreachable: gone");
  beat.add_fenced_gpus(1);
  beat.set_gpu_fence_reason("GPU 1: probe exit 1");
  HostHealthChange c = ApplyHostHealth(beat, &agent);
  EXPECT_TRUE(c.changed);
  EXPECT_FALSE(c.freed);
  EXPECT_THAT(AvailableKinds(agent), ElementsAre(v1::STAGE_KIND_EXEC));
  EXPECT_EQ(FencedGpus(agent), (std::set<int32_t>{1}));
  EXPECT_FALSE(ApplyHostHealth(beat, &agent).changed);

  // The daemon is back; the GPU still fenced.
  beat.clear_unavailable_kinds();
  beat.clear_kinds_unavailable_reason();
  c = ApplyHostHealth(beat, &agent);
  EXPECT_TRUE(c.changed);
  EXPECT_TRUE(c.freed);
  EXPECT_THAT(AvailableKinds(agent), ElementsAre(v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_RUN));

  beat.clear_fenced_gpus();
  EXPECT_TRUE(ApplyHostHealth(beat, &agent).freed);
  EXPECT_TRUE(FencedGpus(agent).empty());
}

TEST(HostHealthTest, ARegistrationCarriesIt) {
  v1::Capabilities caps;
  caps.add_unavailable_kinds(v1::STAGE_KIND_DOCKER_BUILD);
  caps.set_kinds_unavailable_reason("docker daemon unreachable");
  caps.add_fenced_gpus(0);
  v1::Agent agent;
  SetHostHealth(caps, &agent);
  EXPECT_THAT(agent.unavailable_kinds(), ElementsAre(v1::STAGE_KIND_DOCKER_BUILD));
  EXPECT_EQ(agent.kinds_unavailable_reason(), "docker daemon unreachable");
  EXPECT_THAT(agent.fenced_gpus(), ElementsAre(0));
}

}  // namespace
}  // namespace musafarm::coordinator
