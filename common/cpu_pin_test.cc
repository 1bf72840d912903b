#include "common/cpu_pin.h"

#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "gtest/gtest.h"

namespace musafarm {
namespace {

std::string CpusAllowed(const std::string& status_path) {
  std::ifstream in(status_path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("Cpus_allowed_list:", 0) == 0) return line.substr(line.find_first_not_of(" \t", 18));
  }
  return "";
}

// A process pinned to one CPU that started a thread and a child before its
// mask could be reset (what a task may do between its execve and the
// spawner's Release): all of them get the mask, not only its main thread.
TEST(CpuPinTest, SetProcessTreeAffinityReachesThreadsAndChildren) {
  cpu_set_t full;
  ASSERT_EQ(::sched_getaffinity(0, sizeof full, &full), 0);
  if (CPU_COUNT(&full) < 2) GTEST_SKIP() << "one CPU: nothing to pin";
  int first = 0;
  while (!CPU_ISSET(first, &full)) ++first;
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    if (::sched_setaffinity(0, sizeof one, &one) != 0) ::_exit(2);
    const pid_t grandchild = ::fork();
    if (grandchild == 0) {
      ::pause();
      ::_exit(0);
    }
    std::thread([] { ::pause(); }).detach();
    const pid_t ids[1] = {grandchild};
    if (::write(ready[1], ids, sizeof ids) != sizeof ids) ::_exit(2);
    ::pause();
    ::_exit(0);
  }
  ASSERT_GT(child, 0);
  ::close(ready[1]);
  pid_t grandchild = -1;
  ASSERT_EQ(::read(ready[0], &grandchild, sizeof grandchild), static_cast<ssize_t>(sizeof grandchild));
  ::close(ready[0]);
  const std::string one = std::to_string(first);
  ASSERT_EQ(CpusAllowed("/proc/" + std::to_string(grandchild) + "/status"), one);

  SetProcessTreeAffinity(child, full);

  cpu_set_t mine;
  ASSERT_EQ(::sched_getaffinity(0, sizeof mine, &mine), 0);
  const std::string want = CpusAllowed("/proc/self/task/" + std::to_string(::syscall(SYS_gettid)) + "/status");
  int threads = 0;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(child) + "/task")) {
    ++threads;
    EXPECT_EQ(CpusAllowed(entry.path().string() + "/status"), want) << entry.path();
  }
  // The main thread and ours; under ThreadSanitizer its runtime's background
  // thread, started with the first thread, is a third (it gets the mask too).
  EXPECT_GE(threads, 2);
  EXPECT_EQ(CpusAllowed("/proc/" + std::to_string(grandchild) + "/status"), want);
  ::kill(grandchild, SIGKILL);
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
}

TEST(CpuPinTest, PinHoldsTheCallerOnOneCpuUntilReleased) {
  cpu_set_t full;
  ASSERT_EQ(::sched_getaffinity(0, sizeof full, &full), 0);
  if (CPU_COUNT(&full) < 2) GTEST_SKIP() << "one CPU: nothing to pin";
  {
    CallerCpuPin pin;
    cpu_set_t now;
    ASSERT_EQ(::sched_getaffinity(0, sizeof now, &now), 0);
    EXPECT_EQ(CPU_COUNT(&now), 1);
    EXPECT_TRUE(CPU_ISSET(::sched_getcpu(), &now));
    pin.Release(-1);
    ASSERT_EQ(::sched_getaffinity(0, sizeof now, &now), 0);
    EXPECT_TRUE(CPU_EQUAL(&now, &full));
  }
  CallerCpuPin dropped;  // released when it goes out of scope, without Release
  (void)dropped;
}

}  // namespace
}  // namespace musafarm
