#include "common/subprocess.h"

#include <sys/wait.h>

#include <cerrno>

#include "gtest/gtest.h"

namespace musafarm {
namespace {

TEST(SubprocessTest, RunsArgvWithExactlyTheGivenEnvAndDir) {
  Child child = Spawn({"sh", "-c", "pwd; echo \"$ONLY\" \"${HOME:-nohome}\"; echo err >&2; exit 7"},
                      {{"ONLY", "x y"}, {"PATH", "/usr/bin:/bin"}}, "/tmp");
  ASSERT_TRUE(child.error.empty()) << child.error;
  std::string out;
  int ticks = 0;
  bool complete = false;
  const int status = Supervise(
      child, [&](std::string d) { out += d; }, [&] { ++ticks; }, absl::Seconds(1), &complete);
  EXPECT_EQ(out, "/tmp\nx y nohome\nerr\n");
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 7);
  EXPECT_TRUE(complete);
  EXPECT_GE(ticks, 1);
}

// The output ends long before the process does: its exit is still waited
// for (on its pidfd beside the pipe), and then reaped with its status.
TEST(SubprocessTest, OutputClosedBeforeTheExitStillGivesTheExitStatus) {
  Child child = Spawn({"sh", "-c", "echo bye; exec >&- 2>&-; sleep 0.3; exit 4"}, InheritedEnv(), "");
  ASSERT_TRUE(child.error.empty()) << child.error;
  std::string out;
  bool complete = false;
  const int status = Supervise(
      child, [&](std::string d) { out += d; }, [] {}, absl::Seconds(1), &complete);
  EXPECT_EQ(out, "bye\n");
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 4);
  EXPECT_TRUE(complete);
  EXPECT_EQ(::waitpid(child.pid, nullptr, WNOHANG), -1) << "reaped";
}

TEST(SubprocessTest, MissingProgramIsReportedNotThrown) {
  Child child = Spawn({"/nonexistent/prog"}, InheritedEnv(), "");
  EXPECT_EQ(child.pid, -1);
  EXPECT_EQ(child.spawn_errno, ENOENT);
  EXPECT_NE(child.error.find("/nonexistent/prog"), std::string::npos);
}

TEST(SubprocessTest, TickCanEndTheProcessGroup) {
  Child child = Spawn({"sh", "-c", "sleep 600 & wait"}, InheritedEnv(), "");
  ASSERT_TRUE(child.error.empty());
  bool sent = false;
  const int status = Supervise(
      child, [](std::string) {},
      [&] {
        if (!sent) ::kill(-child.pid, SIGKILL);
        sent = true;
      },
      absl::Seconds(1), nullptr);
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

}  // namespace
}  // namespace musafarm
