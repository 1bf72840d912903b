#include "common/spawn_slice.h"

#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace musafarm {
namespace {

// The calling thread's time slice in ns as the scheduler shows it
// (/proc/thread-self/sched, "se.slice"), -1 where the kernel shows none.
int64_t ThreadSlice() {
  std::ifstream in("/proc/thread-self/sched");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("se.slice", 0) == 0) return std::stoll(line.substr(line.find(':') + 1));
  }
  return -1;
}

struct Attr {  // the kernel's struct sched_attr
  uint32_t size;
  uint32_t policy;
  uint64_t flags;
  int32_t nice;
  uint32_t priority;
  uint64_t runtime, deadline, period;
  uint32_t util_min, util_max;
};

Attr ThreadAttr() {
  Attr attr;
  std::memset(&attr, 0, sizeof attr);
  EXPECT_EQ(::syscall(SYS_sched_getattr, 0, &attr, sizeof attr, 0), 0);
  return attr;
}

// Each test on a thread of its own: SpawnSlice marks the thread for good
// (SCHED_RESET_ON_FORK) and remembers per thread whether it may.
template <typename F>
void OnNewThread(F f) {
  std::thread(f).join();
}

TEST(SpawnSliceTest, TheThreadHasTheShortestSliceUntilRestore) {
  OnNewThread([] {
    const int64_t before = ThreadSlice();
    if (before < 0) GTEST_SKIP() << "the kernel shows no se.slice";
    const Attr attr_before = ThreadAttr();
    SpawnSlice slice;
    ASSERT_TRUE(slice.active());
    if (ThreadSlice() == before) GTEST_SKIP() << "a kernel without custom slices (Linux 6.12)";
    EXPECT_EQ(ThreadSlice(), 100 * 1000);
    EXPECT_EQ(ThreadAttr().runtime, 100u * 1000);
    EXPECT_NE(ThreadAttr().flags & 0x01, 0u);  // SCHED_FLAG_RESET_ON_FORK
    slice.Restore();
    EXPECT_FALSE(slice.active());
    EXPECT_EQ(ThreadSlice(), before);
    EXPECT_EQ(ThreadAttr().runtime, attr_before.runtime);
    EXPECT_EQ(ThreadAttr().policy, static_cast<uint32_t>(SCHED_OTHER));
    EXPECT_EQ(ThreadAttr().nice, attr_before.nice);
  });
}

TEST(SpawnSliceTest, AThreadOfAnotherPolicyIsLeftAlone) {
  OnNewThread([] {
    struct sched_param param = {};
    ASSERT_EQ(::sched_setscheduler(0, SCHED_BATCH, &param), 0);
    const int64_t before = ThreadSlice();
    const Attr attr_before = ThreadAttr();
    {
      SpawnSlice slice;
      EXPECT_FALSE(slice.active());
      EXPECT_EQ(ThreadSlice(), before);
    }
    const Attr after = ThreadAttr();
    EXPECT_EQ(after.policy, static_cast<uint32_t>(SCHED_BATCH));
    EXPECT_EQ(after.flags & 0x01, 0u);  // not marked
    EXPECT_EQ(after.runtime, attr_before.runtime);
  });
}

}  // namespace
}  // namespace musafarm
