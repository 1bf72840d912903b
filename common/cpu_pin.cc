#include "common/cpu_pin.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace musafarm {
namespace {

// A tree deeper than this is not followed further (a chain of processes each
// forking the next within the first microseconds of the spawn is not a
// build's; the bound keeps a fork bomb from holding the caller).
constexpr int kMaxDepth = 16;
// How often the thread list of one process is read again for threads started
// by a thread that still held the pin when the list was read.
constexpr int kMaxThreadRounds = 8;

std::vector<pid_t> ReadIds(const std::string& path) {
  std::vector<pid_t> ids;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ids;
  std::string text;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  ::close(fd);
  for (absl::string_view word : absl::StrSplit(text, ' ', absl::SkipWhitespace())) {
    int id = 0;
    if (absl::SimpleAtoi(word, &id) && id > 0) ids.push_back(id);
  }
  return ids;
}

std::vector<pid_t> ListThreads(pid_t pid) {
  std::vector<pid_t> tids;
  DIR* dir = ::opendir(absl::StrCat("/proc/", pid, "/task").c_str());
  if (dir == nullptr) return tids;
  while (const dirent* e = ::readdir(dir)) {
    int tid = 0;
    if (absl::SimpleAtoi(e->d_name, &tid) && tid > 0) tids.push_back(tid);
  }
  ::closedir(dir);
  return tids;
}

void SetTree(pid_t pid, const cpu_set_t& mask, int depth) {
  // The main thread first: a thread it starts from here on inherits `mask`,
  // so the list below can miss only threads started by other threads.
  if (::sched_setaffinity(pid, sizeof mask, &mask) != 0) return;  // gone
  std::set<pid_t> done;
  for (int round = 0; round < kMaxThreadRounds; ++round) {
    bool more = false;
    for (pid_t tid : ListThreads(pid)) {
      if (!done.insert(tid).second) continue;
      more = true;
      if (tid != pid) (void)::sched_setaffinity(tid, sizeof mask, &mask);
      if (depth >= kMaxDepth) continue;
      // Listed after the thread's mask was set: what it forks later inherits it.
      for (pid_t child : ReadIds(absl::StrCat("/proc/", pid, "/task/", tid, "/children"))) {
        SetTree(child, mask, depth + 1);
      }
    }
    // One thread (the usual case: a process that has not yet run past its
    // execve), or no new ones since the last list: complete.
    if (!more || done.size() == 1) break;
  }
}

}  // namespace

void SetProcessTreeAffinity(pid_t pid, const cpu_set_t& mask) { SetTree(pid, mask, 0); }

CallerCpuPin::CallerCpuPin() {
  CPU_ZERO(&original_);
  if (::sched_getaffinity(0, sizeof original_, &original_) != 0 || CPU_COUNT(&original_) < 2) {
    return;
  }
  const int cpu = ::sched_getcpu();
  if (cpu < 0 || cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &original_)) return;
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(cpu, &one);
  pinned_ = ::sched_setaffinity(0, sizeof one, &one) == 0;
}

CallerCpuPin::~CallerCpuPin() { Release(-1); }

void CallerCpuPin::Release(pid_t child) {
  if (!pinned_) return;
  pinned_ = false;
  const int saved_errno = errno;
  // The child first, while this thread still holds the one CPU the child's
  // tree may use: it can run there only when this thread does not, so what
  // it starts meanwhile is rare, and is found below.
  if (child > 0) SetProcessTreeAffinity(child, original_);
  (void)::sched_setaffinity(0, sizeof original_, &original_);
  errno = saved_errno;
}

}  // namespace musafarm
