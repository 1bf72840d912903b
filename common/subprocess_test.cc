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
