#include "common/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/clone_spawn.h"

extern char** environ;

namespace musafarm {
namespace {
// A task that prints fast fills a default (64 KiB) pipe with each write. A
// bigger pipe lets the reader take what piled up while it was busy in one
// read, and its caller pass it on as one piece (the agent: one spool append,
// one log chunk), instead of one per 64 KiB. 256 KiB, not 1 MiB: the pipe is
// also a queue ahead of a log watcher, and with four tasks printing at once
// 4 x 1 MiB of it was ~18 ms of every line's delay at 220 MB/s (issue 19).
constexpr size_t kReadChunk = kChildReadChunk;
constexpr int kPipeBytes = 256 << 10;

// Where Spawn found programs (ResolveInPath): how long an answer holds, and how
// many are kept (names come from stages, so the map must not grow without end).
constexpr absl::Duration kPathCacheFor = absl::Seconds(1);
constexpr size_t kPathCacheMax = 256;

struct FoundProgram {
  std::string path;
  absl::Time at;
};

// Key: PATH, then the program's name.
struct PathCache {
  absl::Mutex mu;
  std::map<std::pair<std::string, std::string>, FoundProgram> found ABSL_GUARDED_BY(mu);
};

PathCache& Programs() {
  static auto* cache = new PathCache();
  return *cache;
}

// What posix_spawnp would run for `name` (a name without a slash), "" to
// leave the search to it: a PATH with a relative entry (the child searches it
// from its own working directory), or nothing found (its error is the one to
// report). posix_spawnp tries each PATH entry with an execve in the child,
// while the caller waits: 15 entries here, 14 of them failing, per spawn.
std::string ResolveInPath(const std::string& name) {
  if (name.find('/') != std::string::npos) return "";
  const char* env_path = std::getenv("PATH");
  // glibc's default when PATH is unset.
  const std::string path = env_path != nullptr ? env_path : "/bin:/usr/bin";
  const auto key = std::make_pair(path, name);
  const absl::Time now = absl::Now();
  PathCache& cache = Programs();
  {
    absl::MutexLock lock(&cache.mu);
    auto it = cache.found.find(key);
    if (it != cache.found.end() && now - it->second.at < kPathCacheFor) return it->second.path;
  }
  std::string found;
  for (absl::string_view dir : absl::StrSplit(path, ':')) {
    if (dir.empty() || dir[0] != '/') return "";
    std::string candidate = absl::StrCat(dir, "/", name);
    struct stat st;
    // As execve: the first regular file this process may execute.
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      found = std::move(candidate);
      break;
    }
  }
  if (found.empty()) return "";
  absl::MutexLock lock(&cache.mu);
  if (cache.found.size() >= kPathCacheMax) cache.found.clear();
  cache.found[key] = FoundProgram{found, now};
  return found;
}

void ForgetInPath(const std::string& name) {
  PathCache& cache = Programs();
  absl::MutexLock lock(&cache.mu);
  for (auto it = cache.found.begin(); it != cache.found.end();) {
    it = it->first.second == name ? cache.found.erase(it) : std::next(it);
  }
}

// Spawn's child as glibc's posix_spawn (search: posix_spawnp, which tries
// each PATH entry with an execve in the child) starts it: the fallback where
// CloneSpawn is not built (sanitizers) and for a program not found in PATH
// by ResolveInPath (its error is the one to report). glibc reports a failed
// exec (ENOENT, EACCES) as the call's result; it always clones with
// CLONE_VM | CLONE_VFORK, letting the child run on any CPU, and resets each
// signal's disposition in the child whatever POSIX_SPAWN_SETSIGDEF holds.
int GlibcSpawn(const ExecRequest& req, bool search, pid_t* pid) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, req.out_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, req.out_fd, 2);
  if (req.dir != nullptr) posix_spawn_file_actions_addchdir_np(&actions, req.dir);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setpgroup(&attr, 0);  // its own group, so a kill reaches every descendant
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  const int rc = search ? ::posix_spawnp(pid, req.path, &actions, &attr, req.argv, req.envp)
                        : ::posix_spawn(pid, req.path, &actions, &attr, req.argv, req.envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  return rc;
}

// MUSAFARM_SPAWN (subprocess.h), read once, at the first spawn.
enum class SpawnHow { kClone, kCloneDefaultSlice, kPosix };
SpawnHow HowToSpawn() {
  static const SpawnHow how = [] {
    const char* env = std::getenv("MUSAFARM_SPAWN");
    if (!kHaveCloneSpawn || (env != nullptr && std::strcmp(env, "posix") == 0)) {
      return SpawnHow::kPosix;
    }
    if (env != nullptr && std::strcmp(env, "clone-default-slice") == 0) {
      return SpawnHow::kCloneDefaultSlice;
    }
    return SpawnHow::kClone;
  }();
  return how;
}
}  // namespace

EnvMap InheritedEnv() {
  EnvMap env;
  for (char** e = environ; *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq != nullptr) env[std::string(*e, static_cast<size_t>(eq - *e))] = std::string(eq + 1);
  }
  return env;
}

Child Spawn(const std::vector<std::string>& argv, const EnvMap& env, const std::string& dir) {
  Child child;
  if (argv.empty() || argv[0].empty()) {
    child.error = "empty argv";
    child.spawn_errno = EINVAL;
    return child;
  }
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : env) env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> c_argv, c_env;
  for (const std::string& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
  c_argv.push_back(nullptr);
  for (std::string& e : env_strings) c_env.push_back(e.data());
  c_env.push_back(nullptr);

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    child.spawn_errno = errno;
    child.error = absl::StrCat("pipe: ", std::strerror(errno));
    return child;
  }
  // Best effort: above /proc/sys/fs/pipe-max-size (1 MiB by default) an
  // unprivileged process is refused, and keeps the default.
  (void)::fcntl(fds[0], F_SETPIPE_SZ, kPipeBytes);
  ExecRequest req;
  req.argv = c_argv.data();
  req.envp = c_env.data();
  req.dir = dir.empty() ? nullptr : dir.c_str();
  req.out_fd = fds[1];
  // A name with a slash runs as given; a bare one from where PATH has it.
  const bool as_given = argv[0].find('/') != std::string::npos;
  const std::string resolved = as_given ? argv[0] : ResolveInPath(argv[0]);
  int rc = ENOENT;
  if (!resolved.empty()) {
    req.path = resolved.c_str();
    req.short_slice = HowToSpawn() == SpawnHow::kClone;
    rc = HowToSpawn() != SpawnHow::kPosix ? CloneSpawn(req, &child.pid)
                                          : GlibcSpawn(req, false, &child.pid);
    // Gone or changed since it was found: forget it, and search again.
    if (!as_given && (rc == ENOENT || rc == EACCES || rc == ENOTDIR)) ForgetInPath(argv[0]);
  }
  if (!as_given && (rc == ENOENT || rc == EACCES || rc == ENOTDIR)) {
    req.path = c_argv[0];
    rc = GlibcSpawn(req, true, &child.pid);
  }
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    child.pid = -1;
    child.spawn_errno = rc;
    child.error = absl::StrCat("cannot run '", argv[0], "': ", std::strerror(rc));
    return child;
  }
  child.fd = fds[0];
  return child;
}

int OpenPidFd(pid_t pid) {
#ifdef SYS_pidfd_open
  return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
  (void)pid;
  return -1;
#endif
}

bool ReapIfExited(pid_t pid, int* status) {
  siginfo_t info = {};
  // WNOWAIT: see the exit but keep the zombie, so the group id is still
  // ours for the clean-up kill.
  if (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 ||
      info.si_pid != pid) {
    return false;
  }
  ::kill(-pid, SIGKILL);
  ::waitpid(pid, status, 0);
  return true;
}

int Supervise(const Child& child, const std::function<void(std::string)>& on_output,
              const std::function<void()>& tick, absl::Duration drain, bool* complete) {
  bool exited = false, eof = false;
  absl::Time drain_until = absl::InfiniteFuture();
  int status = 0;
  // Not zero-filled: pages are touched only as far as reads fill them.
  std::unique_ptr<char[]> buf(new char[kReadChunk]);
  // Waited on beside the pipe: a process that closes its output as it exits
  // (most do) is seen exiting as soon as it has, not at the next tick.
  const int pidfd = OpenPidFd(child.pid);
  while (!exited || (!eof && absl::Now() < drain_until)) {
    if (!exited) tick();
    struct pollfd p[2] = {{child.fd, POLLIN, 0}, {pidfd, POLLIN, 0}};
    // Output closed: only the exit is left to wait for.
    struct pollfd* first = eof ? &p[1] : &p[0];
    const nfds_t n = static_cast<nfds_t>((eof ? 0 : 1) + (!exited && pidfd >= 0 ? 1 : 0));
    if (n == 0) {
      absl::SleepFor(absl::Milliseconds(20));  // output closed, no pidfd: poll for the exit
    } else if (::poll(first, n, 50) > 0 && !eof && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      const ssize_t r = ::read(child.fd, buf.get(), kReadChunk);
      if (r > 0) {
        on_output(std::string(buf.get(), static_cast<size_t>(r)));
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        eof = true;
      }
    }
    if (!exited && ReapIfExited(child.pid, &status)) {
      exited = true;
      drain_until = absl::Now() + drain;
    }
  }
  if (pidfd >= 0) ::close(pidfd);
  ::close(child.fd);
  if (complete != nullptr) *complete = eof;
  return status;
}

}  // namespace musafarm
