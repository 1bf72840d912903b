#include "agent/executor/pending_removals.h"

#include <unistd.h>

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

using Entry = PendingRemovals::Entry;
using ::testing::ElementsAre;

TEST(PendingRemovalsTest, KeptAcrossRestartsAndDroppedOnceDone) {
  const std::string path =
      ::testing::TempDir() + "/pending-removals-" + std::to_string(::getpid());
  std::filesystem::remove(path);
  {
    PendingRemovals p(path);
    p.Add({"container", "musafarm-7"});
    p.Add({"attempt", "9"});
    p.Add({"container", "musafarm-7"});  // once
    EXPECT_THAT(p.List(), ElementsAre(Entry{"container", "musafarm-7"}, Entry{"attempt", "9"}));
  }
  PendingRemovals again(path);  // the next run of the agent
  ASSERT_THAT(again.List(), ElementsAre(Entry{"container", "musafarm-7"}, Entry{"attempt", "9"}));
  // The daemon is still away for the attempt's containers.
  std::vector<std::string> lines = again.Retry([](const Entry& e) {
    return e.kind == "container" ? absl::OkStatus() : absl::UnavailableError("down");
  });
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(lines[0], "removed container musafarm-7 (its removal had failed while the daemon was away)");
  EXPECT_THAT(PendingRemovals(path).List(), ElementsAre(Entry{"attempt", "9"}));
  again.Retry([](const Entry&) { return absl::OkStatus(); });
  EXPECT_TRUE(PendingRemovals(path).List().empty());
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace musafarm::agent
