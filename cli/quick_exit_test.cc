#include "cli/quick_exit.h"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sched.h>
#include <signal.h>

#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "gtest/gtest.h"

namespace musafarm::cli {
namespace {

// Field 41 of /proc/PID/stat (policy), -1 if unreadable.
int SchedulingPolicy(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream fields(stat.substr(close + 2));  // from field 3, the state
  std::string field;
  for (int n = 3; fields >> field; ++n) {
    if (n == 41) return std::stoi(field);
  }
  return -1;
}

// The process exits with its code and its output pipe reaches EOF, and a
// second process, the one that held the memory, exits by itself afterwards.
// As a subreaper this test inherits that orphan and reaps it; a plain _exit
// leaves nothing to reap.
TEST(QuickExitTest, TheCodeIsKeptThePipeEndsAndAHolderExitsAfterIt) {
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    close(out[0]);
    close(out[1]);
    if (write(STDOUT_FILENO, "bye\n", 4) != 4) _exit(100);
    ExitLeavingTeardown(3);
  }
  close(out[1]);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);

  // EOF: neither process keeps the write end (the holder closed its copy).
  std::string got;
  char buf[64];
  for (ssize_t n; (n = read(out[0], buf, sizeof(buf))) > 0;) got.append(buf, static_cast<size_t>(n));
  close(out[0]);
  EXPECT_EQ(got, "bye\n");

  // The holder: reparented to us once its parent exited; it ends on its own.
  // Sanitizer builds exit plainly: nothing is left to reap there.
  siginfo_t info = {};
  const int waited = waitid(P_ALL, 0, &info, WEXITED | WNOWAIT);
  if (!kExitHandsOffTeardown) {
    EXPECT_EQ(waited, -1);
    ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
    return;
  }
  ASSERT_EQ(waited, 0) << "no second process held the memory";
  const pid_t holder = info.si_pid;
  EXPECT_NE(holder, pid);
  // Still a zombie (WNOWAIT): its stat says the class it ended in.
  EXPECT_EQ(SchedulingPolicy(holder), SCHED_IDLE) << "the teardown ran at normal priority";
  int held = 0;
  ASSERT_EQ(waitpid(holder, &held, 0), holder);
  ASSERT_TRUE(WIFEXITED(held));
  EXPECT_EQ(WEXITSTATUS(held), 0);
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

TEST(QuickExitTest, EnterIdleSchedulingClassLeavesTheNormalClass) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    EnterIdleSchedulingClass();
    _exit(sched_getscheduler(0) == SCHED_IDLE ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace musafarm::cli
