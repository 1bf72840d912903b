#include "cli/quick_exit.h"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "gtest/gtest.h"

namespace musafarm::cli {
namespace {

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
  int held = 0;
  const pid_t holder = waitpid(-1, &held, 0);
  if (!kExitHandsOffTeardown) {
    EXPECT_EQ(holder, -1);
    ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
    return;
  }
  ASSERT_GT(holder, 0) << "no second process held the memory";
  EXPECT_NE(holder, pid);
  ASSERT_TRUE(WIFEXITED(held));
  EXPECT_EQ(WEXITSTATUS(held), 0);
  ASSERT_EQ(prctl(PR_SET_CHILD_SUBREAPER, 0), 0);
}

}  // namespace
}  // namespace musafarm::cli
