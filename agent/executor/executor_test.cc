#include "agent/executor/executor.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

// Moved from image_pruner_test.cc with StageImages (now an executor concern).
TEST(ExecutorTest, StageImages) {
  v1::StageSpec build;
  build.mutable_docker_build()->add_tags("r/a:1");
  build.mutable_docker_build()->add_tags("r/a:latest");
  EXPECT_THAT(StageImages(build), ElementsAre("r/a:1", "r/a:latest"));
  v1::StageSpec run;
  run.mutable_docker_run()->set_image("r/a:1");
  EXPECT_THAT(StageImages(run), ElementsAre("r/a:1"));
  v1::StageSpec push;
  push.mutable_docker_push()->add_images("r/b:2");
  EXPECT_THAT(StageImages(push), ElementsAre("r/b:2"));
  EXPECT_THAT(StageImages(v1::StageSpec()), IsEmpty());
}

TEST(ExecutorTest, DefaultTracesNameTheAttemptAndItsKind) {
  class Nothing final : public Executor {
   public:
    absl::StatusOr<std::unique_ptr<Execution>> Start(const v1::Assignment&, const std::string&,
                                                     ExecCallbacks) override {
      return absl::UnimplementedError("no");
    }
  } executor;
  v1::Assignment a;
  a.set_task_id("7/dev/test");
  a.set_attempt_id(12);
  a.mutable_run()->mutable_exec()->add_argv("true");
  const AttemptTraces t = executor.Traces(a);
  EXPECT_EQ(t.task_id, "7/dev/test");
  EXPECT_EQ(t.attempt_id, 12u);
  EXPECT_EQ(t.kind, "exec");
  EXPECT_TRUE(t.container.empty());
  EXPECT_THAT(t.images, IsEmpty());
}

}  // namespace
}  // namespace musafarm::agent
