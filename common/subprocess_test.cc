#include "common/subprocess.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "common/clone_spawn.h"
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

// A line of /proc/PID/status ("Cpus_allowed_list:\t0-1" -> "0-1"), "" if none.
std::string StatusField(pid_t pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) {
      const size_t at = line.find_first_not_of(" \t", field.size() + 1);
      return at == std::string::npos ? "" : line.substr(at);
    }
  }
  return "";
}

std::string StatusOfOutput(const std::string& out, const std::string& field) {
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field + ":", 0) == 0) return line.substr(line.find_first_not_of(" \t", field.size() + 1));
  }
  return "";
}

void EndGroup(const Child& child) {
  ::kill(-child.pid, SIGKILL);
  ::kill(child.pid, SIGKILL);  // also when it leads no group
  Supervise(child, [](std::string) {}, [] {}, absl::Seconds(1), nullptr);
}

TEST(SubprocessTest, ExecFailuresAreTheSpawnsResult) {
  const std::string root = ::testing::TempDir() + "/mf-noexec-" + std::to_string(::getpid());
  std::filesystem::create_directories(root);
  std::ofstream(root + "/plain") << "#!/bin/sh\necho never\n";  // not executable
  Child plain = Spawn({root + "/plain"}, InheritedEnv(), "");
  EXPECT_EQ(plain.pid, -1);
  EXPECT_EQ(plain.spawn_errno, EACCES);
  EXPECT_NE(plain.error.find("Permission denied"), std::string::npos) << plain.error;
  Child dir = Spawn({root}, InheritedEnv(), "");
  EXPECT_EQ(dir.pid, -1);
  EXPECT_EQ(dir.spawn_errno, EACCES);
  Child nowhere = Spawn({"true"}, InheritedEnv(), root + "/missing");
  EXPECT_EQ(nowhere.pid, -1);
  EXPECT_EQ(nowhere.spawn_errno, ENOENT);
  std::filesystem::remove_all(root);
}

TEST(SubprocessTest, ChildLeadsAProcessGroupOfItsOwn) {
  Child child = Spawn({"sleep", "600"}, InheritedEnv(), "");
  ASSERT_TRUE(child.error.empty()) << child.error;
  EXPECT_EQ(::getpgid(child.pid), child.pid);
  EXPECT_NE(::getpgid(child.pid), ::getpgrp());
  EndGroup(child);
}

// The agent ignores SIGPIPE and blocks SIGTERM; its tasks must do neither, and
// a handler of the caller's is not the child's.
TEST(SubprocessTest, ChildHasDefaultSignalsAndNoneBlocked) {
  struct sigaction old_pipe = {}, old_usr1 = {};
  struct sigaction ign = {};
  ign.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ign, &old_pipe), 0);
  struct sigaction handler = {};
  handler.sa_handler = [](int) {};
  ASSERT_EQ(::sigaction(SIGUSR1, &handler, &old_usr1), 0);
  sigset_t term, old_mask;
  sigemptyset(&term);
  sigaddset(&term, SIGTERM);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, &term, &old_mask), 0);
  Child child = Spawn({"cat", "/proc/self/status"}, InheritedEnv(), "");
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::sigaction(SIGPIPE, &old_pipe, nullptr);
  ::sigaction(SIGUSR1, &old_usr1, nullptr);
  ASSERT_TRUE(child.error.empty()) << child.error;
  const std::string out = RunToEnd(child);
  EXPECT_EQ(StatusOfOutput(out, "SigBlk"), "0000000000000000") << out;
  // glibc's posix_spawn, which sanitizer builds keep (kHaveCloneSpawn), sets
  // its two internal signals (32 and 33, SIGCANCEL and SIGSETXID) to ignored
  // in the child, and execve keeps them so; CloneSpawn resets every signal.
  const std::string ignored = StatusOfOutput(out, "SigIgn");
  const uint64_t glibc_internal = (uint64_t{1} << 31) | (uint64_t{1} << 32);
  const uint64_t allowed = kHaveCloneSpawn ? 0 : glibc_internal;
  EXPECT_EQ(std::stoull(ignored, nullptr, 16) & ~allowed, 0u) << out;
  EXPECT_EQ(StatusOfOutput(out, "SigCgt"), "0000000000000000") << out;
}

// stdin is /dev/null, stdout and stderr the pipe, and nothing else of the
// caller's is open in the child (the pipe's own ends are close-on-exec).
TEST(SubprocessTest, ChildHasDevNullThePipeAndNoOtherDescriptors) {
  // Our stdin is something else meanwhile (the test runner's may be
  // /dev/null already).
  int other[2];
  ASSERT_EQ(::pipe(other), 0);
  const int saved_stdin = ::dup(0);
  ASSERT_EQ(::dup2(other[0], 0), 0);
  Child in = Spawn({"readlink", "/proc/self/fd/0"}, InheritedEnv(), "");
  ::dup2(saved_stdin, 0);
  for (int fd : {saved_stdin, other[0], other[1]}) ::close(fd);
  ASSERT_TRUE(in.error.empty()) << in.error;
  EXPECT_EQ(RunToEnd(in), "/dev/null\n");
  // 0, 1, 2, whatever this process holds without close-on-exec (what the
  // test runner left open), as any exec passes on, and ls's own: the
  // directory it lists, on the lowest number free.
  std::set<int> open_fds = {0, 1, 2};
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    const int fd = std::stoi(entry.path().filename().string());
    const int flags = ::fcntl(fd, F_GETFD);
    if (fd > 2 && flags >= 0 && (flags & FD_CLOEXEC) == 0) open_fds.insert(fd);
  }
  int ls_dir = 3;
  while (open_fds.count(ls_dir) > 0) ++ls_dir;
  open_fds.insert(ls_dir);
  std::string want;
  for (int fd : open_fds) want += std::to_string(fd) + "\n";
  Child fds = Spawn({"sh", "-c", "ls /proc/self/fd | sort -n"}, InheritedEnv(), "");
  ASSERT_TRUE(fds.error.empty()) << fds.error;
  EXPECT_EQ(RunToEnd(fds), want);
}

// The spawn pins the calling thread to its CPU for the clone (CallerCpuPin):
// afterwards the task may use every CPU the caller may, and so may the caller.
TEST(SubprocessTest, ChildAndCallerKeepTheCallersCpuMask) {
  cpu_set_t mask;
  ASSERT_EQ(::sched_getaffinity(0, sizeof mask, &mask), 0);
  if (CPU_COUNT(&mask) < 2) GTEST_SKIP() << "one CPU: nothing to pin";
  const std::string mine = StatusField(static_cast<pid_t>(::syscall(SYS_gettid)), "Cpus_allowed_list");
  ASSERT_FALSE(mine.empty());
  for (int i = 0; i < 20; ++i) {
    Child child = Spawn({"sleep", "600"}, InheritedEnv(), "");
    ASSERT_TRUE(child.error.empty()) << child.error;
    EXPECT_EQ(StatusField(child.pid, "Cpus_allowed_list"), mine);
    cpu_set_t after;
    ASSERT_EQ(::sched_getaffinity(0, sizeof after, &after), 0);
    EXPECT_TRUE(CPU_EQUAL(&after, &mask));
    EndGroup(child);
  }
}

// With short_slice the spawner's time slice is the shortest while it waits
// for the child's execve (SpawnSlice); the child must start with the default
// one, and the spawner have its own back.
TEST(SubprocessTest, ShortSliceSpawnLeavesChildAndCallerTheirTimeSlice) {
  if (!kHaveCloneSpawn) GTEST_SKIP() << "a sanitizer build: glibc's posix_spawn";
  const auto slice_of = [](const std::string& sched) {
    std::ifstream in(sched);
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("se.slice", 0) == 0) return line.substr(line.find(':') + 1);
    }
    return std::string();
  };
  const std::string mine = slice_of("/proc/thread-self/sched");
  if (mine.empty()) GTEST_SKIP() << "the kernel shows no se.slice";
  std::string path = "/bin/sleep", arg = "600";
  char* argv[] = {path.data(), arg.data(), nullptr};
  char* envp[] = {nullptr};
  for (int i = 0; i < 5; ++i) {
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    ExecRequest req;
    req.path = path.c_str();
    req.argv = argv;
    req.envp = envp;
    req.out_fd = fds[1];
    req.short_slice = true;
    Child child;
    ASSERT_EQ(CloneSpawn(req, &child.pid), 0);
    ::close(fds[1]);
    child.fd = fds[0];
    EXPECT_EQ(slice_of("/proc/" + std::to_string(child.pid) + "/sched"), mine);
    EXPECT_EQ(slice_of("/proc/thread-self/sched"), mine);
    EndGroup(child);
  }
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
