#include "common/stage_kind.h"

#include "gtest/gtest.h"

namespace musafarm {
namespace {

TEST(StageKindTest, KindOfEachStageAndNone) {
  v1::StageSpec run;
  EXPECT_EQ(StageKindOf(run), v1::STAGE_KIND_UNSPECIFIED);
  EXPECT_EQ(StageKindName(run), "unknown");
  run.mutable_exec()->set_shell(true);
  EXPECT_EQ(StageKindOf(run), v1::STAGE_KIND_EXEC);
  run.mutable_docker_build();
  EXPECT_EQ(StageKindOf(run), v1::STAGE_KIND_DOCKER_BUILD);
  run.mutable_docker_run();
  EXPECT_EQ(StageKindOf(run), v1::STAGE_KIND_DOCKER_RUN);
  run.mutable_docker_push();
  EXPECT_EQ(StageKindOf(run), v1::STAGE_KIND_DOCKER_PUSH);
  EXPECT_EQ(StageKindName(run), "docker_push");
}

// The names are what old agents advertise and old coordinators compare.
TEST(StageKindTest, NamesRoundTripAndUnknownNamesHaveNoKind) {
  EXPECT_EQ(StageKindName(v1::STAGE_KIND_EXEC), "exec");
  EXPECT_EQ(StageKindName(v1::STAGE_KIND_DOCKER_BUILD), "docker_build");
  EXPECT_EQ(StageKindName(v1::STAGE_KIND_DOCKER_RUN), "docker_run");
  EXPECT_EQ(StageKindName(v1::STAGE_KIND_DOCKER_PUSH), "docker_push");
  EXPECT_EQ(StageKindName(v1::STAGE_KIND_UNSPECIFIED), "unknown");
  EXPECT_EQ(StageKindName(static_cast<v1::StageKind>(42)), "unknown");
  for (v1::StageKind kind : {v1::STAGE_KIND_EXEC, v1::STAGE_KIND_DOCKER_BUILD,
                             v1::STAGE_KIND_DOCKER_RUN, v1::STAGE_KIND_DOCKER_PUSH}) {
    EXPECT_EQ(StageKindFromName(StageKindName(kind)), kind);
  }
  EXPECT_EQ(StageKindFromName("unknown"), v1::STAGE_KIND_UNSPECIFIED);
  EXPECT_EQ(StageKindFromName("podman_run"), v1::STAGE_KIND_UNSPECIFIED);
  EXPECT_EQ(StageKindFromName(""), v1::STAGE_KIND_UNSPECIFIED);
}

}  // namespace
}  // namespace musafarm
