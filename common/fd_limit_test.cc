#include "common/fd_limit.h"

#include <sys/resource.h>

#include "gtest/gtest.h"

namespace musafarm {
namespace {

// Puts the process's limit back whatever the test did.
struct RestoreLimit {
  struct rlimit saved {};
  RestoreLimit() { getrlimit(RLIMIT_NOFILE, &saved); }
  ~RestoreLimit() { setrlimit(RLIMIT_NOFILE, &saved); }
};

TEST(FdLimitTest, RaisesTheSoftLimitToTheHardOne) {
  RestoreLimit restore;
  const struct rlimit before = restore.saved;
  if (before.rlim_max <= 64) GTEST_SKIP() << "hard RLIMIT_NOFILE " << before.rlim_max;
  // A shell's usual soft limit below the hard one.
  struct rlimit low = before;
  low.rlim_cur = 64;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);

  absl::StatusOr<uint64_t> now = RaiseOpenFileLimit();
  ASSERT_TRUE(now.ok()) << now.status();
  struct rlimit after {};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &after), 0);
  EXPECT_EQ(after.rlim_cur, before.rlim_max);
  EXPECT_EQ(*now, static_cast<uint64_t>(before.rlim_max));
  // Already at the hard limit: nothing to do, the same answer.
  EXPECT_EQ(*RaiseOpenFileLimit(), static_cast<uint64_t>(before.rlim_max));
}

}  // namespace
}  // namespace musafarm
