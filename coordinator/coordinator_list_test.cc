#include "coordinator/coordinator_list.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using google::protobuf::util::TimeUtil;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

std::vector<std::string> Roles(const v1::ListCoordinatorsResponse& r) {
  std::vector<std::string> out;
  for (const v1::CoordinatorInfo& c : r.coordinators()) {
    out.push_back(c.id() + "=" + v1::CoordinatorRole_Name(c.role()));
  }
  return out;
}

LeaderInfo Leader(const std::string& id, bool held) {
  LeaderInfo l;
  l.epoch = 4;
  l.address = "a:1";
  l.coordinator = id;
  l.since = kNow - absl::Minutes(5);
  l.held = held;
  return l;
}

TEST(CoordinatorListTest, TheLockHolderIsActiveFreshRowsStandbyStaleRowsGone) {
  const std::vector<CoordinatorSeen> seen = {
      {"c", "c:1", kNow - absl::Minutes(10)},  // crashed long ago
      {"b", "b:1", kNow - absl::Seconds(2)},
      {"a", "a:1", kNow - absl::Seconds(1)},
  };
  v1::ListCoordinatorsResponse r =
      DescribeCoordinators(Leader("a", true), seen, "b", kNow, absl::Seconds(30));
  EXPECT_THAT(Roles(r),
              ::testing::ElementsAre("a=COORDINATOR_ROLE_ACTIVE", "b=COORDINATOR_ROLE_STANDBY",
                                     "c=COORDINATOR_ROLE_GONE"));
  EXPECT_EQ(r.store(), "postgresql");
  EXPECT_EQ(r.answered_by(), "b");
  const v1::CoordinatorInfo& a = r.coordinators(0);
  EXPECT_EQ(a.epoch(), 4);
  EXPECT_EQ(a.address(), "a:1");
  EXPECT_EQ(TimeUtil::TimestampToMicroseconds(a.active_since()),
            absl::ToUnixMicros(kNow - absl::Minutes(5)));
  EXPECT_EQ(TimeUtil::TimestampToMicroseconds(a.last_seen()),
            absl::ToUnixMicros(kNow - absl::Seconds(1)));
  // Only the active one has an epoch and a since.
  EXPECT_EQ(r.coordinators(1).epoch(), 0);
  EXPECT_FALSE(r.coordinators(1).has_active_since());
  EXPECT_EQ(TimeUtil::TimestampToMicroseconds(r.coordinators(2).last_seen()),
            absl::ToUnixMicros(kNow - absl::Minutes(10)));
}

TEST(CoordinatorListTest, AnActiveWithoutARowIsListedFromTheLeadershipRow) {
  v1::ListCoordinatorsResponse r =
      DescribeCoordinators(Leader("a", true), {{"b", "b:1", kNow}}, "b", kNow, absl::Seconds(30));
  EXPECT_THAT(Roles(r),
              ::testing::ElementsAre("a=COORDINATOR_ROLE_ACTIVE", "b=COORDINATOR_ROLE_STANDBY"));
  EXPECT_EQ(r.coordinators(0).address(), "a:1");
  EXPECT_EQ(r.coordinators(0).epoch(), 4);
}

TEST(CoordinatorListTest, WhileNobodyHoldsTheLockTheLastWinnerIsNotActive) {
  // The active was killed a moment ago: its row is fresh, the lock is free.
  v1::ListCoordinatorsResponse r = DescribeCoordinators(
      Leader("a", false), {{"a", "a:1", kNow - absl::Seconds(1)}, {"b", "b:1", kNow}}, "b", kNow,
      absl::Seconds(30));
  EXPECT_THAT(Roles(r),
              ::testing::ElementsAre("a=COORDINATOR_ROLE_STANDBY", "b=COORDINATOR_ROLE_STANDBY"));
  // Once its row is stale, it is gone.
  r = DescribeCoordinators(Leader("a", false),
                           {{"a", "a:1", kNow - absl::Seconds(31)}, {"b", "b:1", kNow}}, "b", kNow,
                           absl::Seconds(30));
  EXPECT_THAT(Roles(r),
              ::testing::ElementsAre("b=COORDINATOR_ROLE_STANDBY", "a=COORDINATOR_ROLE_GONE"));
}

TEST(CoordinatorListTest, TheStaleBoundIsThreeLeaderTimeoutsAndNeverUnderThreeRefreshes) {
  EXPECT_EQ(StaleAfter(absl::Seconds(10)), absl::Seconds(30));
  EXPECT_EQ(StaleAfter(absl::Seconds(1)), absl::Seconds(6));
}

TEST(CoordinatorListTest, OnSqliteTheOneCoordinatorIsActive) {
  v1::ListCoordinatorsResponse r =
      DescribeSoleCoordinator("h/1/2", "h:7070", kNow - absl::Hours(1), kNow);
  EXPECT_EQ(r.store(), "sqlite");
  EXPECT_EQ(r.answered_by(), "h/1/2");
  EXPECT_THAT(Roles(r), ::testing::ElementsAre("h/1/2=COORDINATOR_ROLE_ACTIVE"));
  EXPECT_EQ(r.coordinators(0).address(), "h:7070");
  EXPECT_EQ(r.coordinators(0).epoch(), 0);
  EXPECT_EQ(TimeUtil::TimestampToMicroseconds(r.coordinators(0).active_since()),
            absl::ToUnixMicros(kNow - absl::Hours(1)));
}

}  // namespace
}  // namespace musafarm::coordinator
