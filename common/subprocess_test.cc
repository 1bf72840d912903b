#include "common/subprocess.h"

#include <sys/wait.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>

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

std::string RunToEnd(const Child& child) {
  std::string out;
  Supervise(child, [&](std::string d) { out += d; }, [] {}, absl::Seconds(1), nullptr);
  return out;
}

// Where a program was found is remembered (so that a burst of spawns does not
// try every PATH entry each time), but a program that is gone from there is
// searched for again at once.
TEST(SubprocessTest, ProgramGoneFromWhereItWasFoundIsSearchedForAgain) {
  const std::string root = ::testing::TempDir() + "/mf-path-" + std::to_string(::getpid());
  std::filesystem::create_directories(root + "/a");
  std::filesystem::create_directories(root + "/b");
  auto script = [&](const std::string& dir, const std::string& says) {
    const std::string path = root + "/" + dir + "/mf-prog";
    std::ofstream(path) << "#!/bin/sh\necho " << says << "\n";
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
  };
  const char* old_path = std::getenv("PATH");
  const std::string saved = old_path != nullptr ? old_path : "";
  ::setenv("PATH", (root + "/a:" + root + "/b:/usr/bin:/bin").c_str(), 1);
  script("b", "from-b");
  Child first = Spawn({"mf-prog"}, InheritedEnv(), "");
  ASSERT_TRUE(first.error.empty()) << first.error;
  EXPECT_EQ(RunToEnd(first), "from-b\n");
  std::filesystem::remove(root + "/b/mf-prog");
  script("a", "from-a");
  Child second = Spawn({"mf-prog"}, InheritedEnv(), "");
  ASSERT_TRUE(second.error.empty()) << second.error;
  EXPECT_EQ(RunToEnd(second), "from-a\n");
  std::filesystem::remove(root + "/a/mf-prog");
  Child gone = Spawn({"mf-prog"}, InheritedEnv(), "");
  EXPECT_EQ(gone.pid, -1);
  EXPECT_EQ(gone.spawn_errno, ENOENT);
  ::setenv("PATH", saved.c_str(), 1);
  std::filesystem::remove_all(root);
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
