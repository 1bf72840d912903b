#include "coordinator/retention_policy.h"

#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

FinishedJob J(const std::string& id, uint64_t bytes) {
  FinishedJob j;
  j.id = id;
  j.stored_bytes = bytes;
  return j;
}

using Ids = std::vector<std::string>;

TEST(ChooseExpiredTest, AgeFirstThenOldestUntilUnderTheBudget) {
  const std::vector<FinishedJob> by_age = {J("1", 100), J("3", 100)};
  const std::vector<FinishedJob> oldest = {J("1", 100), J("2", 100), J("3", 100), J("4", 100),
                                           J("5", 100)};
  // 500 held, 200 allowed: 1 and 3 by age, then 2 (oldest not yet chosen) is enough.
  EXPECT_EQ(ChooseExpired(by_age, oldest, 500, 200, {}, 10), (Ids{"1", "3", "2"}));
  // No size limit: age only.
  EXPECT_EQ(ChooseExpired(by_age, oldest, 500, 0, {}, 10), (Ids{"1", "3"}));
  // Under the budget already: age only.
  EXPECT_EQ(ChooseExpired(by_age, oldest, 500, 500, {}, 10), (Ids{"1", "3"}));
  // Size only.
  EXPECT_EQ(ChooseExpired({}, oldest, 500, 250, {}, 10), (Ids{"1", "2", "3"}));
}

TEST(ChooseExpiredTest, PinnedJobsStayAndTheBatchIsBounded) {
  const std::vector<FinishedJob> oldest = {J("1", 100), J("2", 100), J("3", 100), J("4", 100)};
  EXPECT_EQ(ChooseExpired({J("1", 100)}, oldest, 400, 150, {"1", "2"}, 10), (Ids{"3", "4"}));
  EXPECT_EQ(ChooseExpired({}, oldest, 400, 0, {}, 10), Ids{});
  EXPECT_EQ(ChooseExpired({J("1", 1), J("2", 1), J("3", 1)}, oldest, 400, 1, {}, 2),
            (Ids{"1", "2"}));
}

TEST(PushedImagesTest, PushedBuildTagsAndPushStagesOnly) {
  v1::Job job;
  auto* build = job.add_tasks()->mutable_spec()->mutable_run()->mutable_docker_build();
  build->add_tags("reg:5000/a:1");
  build->set_push(true);
  auto* local = job.add_tasks()->mutable_spec()->mutable_run()->mutable_docker_build();
  local->add_tags("local/only:1");  // not pushed
  auto* push = job.add_tasks()->mutable_spec()->mutable_run()->mutable_docker_push();
  push->add_images("harbor.example/x:2");
  push->add_images("reg:5000/a:1");
  job.add_tasks()->mutable_spec()->mutable_run()->mutable_docker_run()->set_image("reg:5000/r:1");
  EXPECT_EQ(PushedImages(job), (Ids{"harbor.example/x:2", "reg:5000/a:1"}));
}

TEST(InRegistryTest, MatchesTheHostAndPortExactly) {
  const std::vector<std::string> farm = {"127.0.0.1:5000"};
  EXPECT_TRUE(InRegistry("127.0.0.1:5000/musafarm/base:py3.8", farm));
  EXPECT_FALSE(InRegistry("127.0.0.1:50001/musafarm/base:py3.8", farm));
  EXPECT_FALSE(InRegistry("harbor.example/musafarm/base:py3.8", farm));
  EXPECT_FALSE(InRegistry("127.0.0.1:5000/x", {}));
}

}  // namespace
}  // namespace musafarm::coordinator
