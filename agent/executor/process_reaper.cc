#include "agent/executor/process_reaper.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <utility>

#include "agent/executor/work_dir_collect.h"

namespace musafarm::agent {
namespace {

// After the main process exited, how long output held by a process that left
// its group (setsid) is still read.
constexpr absl::Duration kDrainAfterExit = absl::Seconds(2);
// While an attempt waits for room for its output: how often room is asked
// for again. The pipe (1 MiB) absorbs the task's output meanwhile.
constexpr absl::Duration kRoomRecheck = absl::Milliseconds(1);
// Without pidfds (kernels before 5.3) the exit is looked for this often.
constexpr absl::Duration kExitPoll = absl::Milliseconds(20);

}  // namespace

// What an Execution and the thread share.
struct ProcessReaper::Shared {
  std::atomic<bool> cancel{false};
  absl::Mutex mu;
  bool ended ABSL_GUARDED_BY(mu) = false;  // on_exit has returned
};

// Wakes the thread (cancel, a new process, stopping). Shared with the
// Executions, which may outlive the reaper.
struct ProcessReaper::Waker {
  Waker() : fd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}
  ~Waker() {
    if (fd >= 0) ::close(fd);
  }
  void Wake() const {
    const uint64_t one = 1;
    (void)!::write(fd, &one, sizeof one);
  }
  void Clear() const {
    uint64_t n = 0;
    (void)!::read(fd, &n, sizeof n);
  }
  const int fd;
};

// Slow ends still running on their own threads: the reaper's destructor waits
// for them. Shared with those threads, so that the count outlives the last.
struct ProcessReaper::SlowEnds {
  absl::Mutex mu;
  int running ABSL_GUARDED_BY(mu) = 0;
};

// The thread's own record of one process.
struct ProcessReaper::Entry {
  WatchedProcess p;
  std::shared_ptr<Shared> shared;
  int pidfd = -1;
  absl::Time deadline = absl::InfiniteFuture();
  absl::Time kill_at = absl::InfiniteFuture();
  absl::Time drain_until = absl::InfiniteFuture();
  absl::Time running_at = absl::InfiniteFuture();  // on_running's time (once; not after the exit)
  bool terminating = false, cancelled = false, timed_out = false;
  bool exited = false, eof = false, waiting_for_room = false, exit_seen = false;
  int status = 0;
};

class ProcessReaper::Handle final : public Execution {
 public:
  Handle(std::shared_ptr<Shared> shared, std::shared_ptr<Waker> waker)
      : shared_(std::move(shared)), waker_(std::move(waker)) {}
  ~Handle() override {
    Cancel();
    absl::MutexLock lock(&shared_->mu);
    shared_->mu.Await(absl::Condition(&shared_->ended));
  }
  void Cancel() override {
    if (!shared_->cancel.exchange(true)) waker_->Wake();
  }

 private:
  const std::shared_ptr<Shared> shared_;
  const std::shared_ptr<Waker> waker_;
};

ProcessReaper::ProcessReaper()
    : waker_(std::make_shared<Waker>()), slow_ends_(std::make_shared<SlowEnds>()) {
  thread_ = std::thread([this] { Run(); });
}

ProcessReaper::~ProcessReaper() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
  }
  waker_->Wake();
  thread_.join();
  absl::MutexLock lock(&slow_ends_->mu);
  slow_ends_->mu.Await(absl::Condition(
      +[](int* running) { return *running == 0; }, &slow_ends_->running));
}

std::unique_ptr<Execution> ProcessReaper::Watch(WatchedProcess process) {
  auto entry = std::make_unique<Entry>();
  entry->shared = std::make_shared<Shared>();
  entry->pidfd = OpenPidFd(process.child.pid);
  const absl::Time now = absl::Now();
  if (process.timeout > absl::ZeroDuration()) entry->deadline = now + process.timeout;
  if (process.callbacks.on_running) entry->running_at = now + process.callbacks.running_after;
  entry->p = std::move(process);
  auto handle = std::make_unique<Handle>(entry->shared, waker_);
  {
    absl::MutexLock lock(&mu_);
    added_.push_back(std::move(entry));
  }
  waker_->Wake();
  return handle;
}

void ProcessReaper::Run() {
  std::vector<std::unique_ptr<Entry>> entries;
  // Not zero-filled: pages are touched only as far as reads fill them.
  std::unique_ptr<char[]> buf(new char[kChildReadChunk]);
  std::vector<struct pollfd> fds;
  std::vector<std::pair<Entry*, bool>> owners;  // per fd after the waker's: entry, is its pidfd
  while (true) {
    bool stopping = false;
    {
      absl::MutexLock lock(&mu_);
      for (auto& e : added_) entries.push_back(std::move(e));
      added_.clear();
      stopping = stopping_;
    }
    if (stopping && entries.empty()) return;
    const absl::Time now = absl::Now();
    absl::Time wake_at = absl::InfiniteFuture();
    fds.assign(1, {waker_->fd, POLLIN, 0});
    owners.clear();
    for (auto& owned : entries) {
      Entry& e = *owned;
      if (stopping) e.shared->cancel.store(true);
      // Only until it is reaped: the group id is ours until then.
      if (!e.exited) {
        if (!e.terminating && (e.shared->cancel.load() || now >= e.deadline)) {
          e.cancelled = e.shared->cancel.load();
          e.timed_out = !e.cancelled;
          e.terminating = true;
          ::kill(-e.p.child.pid, SIGTERM);
          e.kill_at = now + e.p.grace;
        }
        if (now >= e.kill_at) {
          ::kill(-e.p.child.pid, SIGKILL);
          e.kill_at = absl::InfiniteFuture();
        }
        if (now >= e.running_at) {
          e.running_at = absl::InfiniteFuture();
          e.p.callbacks.on_running();
        }
      }
      // Once it is being stopped, or after it was reaped (only the pipe's
      // rest is left), output is taken as it comes.
      if (e.waiting_for_room &&
          (e.terminating || e.exited || e.p.callbacks.wait_for_room(absl::ZeroDuration()))) {
        e.waiting_for_room = false;
      }
      if (!e.eof && !e.waiting_for_room) {
        fds.push_back({e.p.child.fd, POLLIN, 0});
        owners.emplace_back(&e, false);
      }
      if (!e.exited) {
        if (e.pidfd >= 0) {
          fds.push_back({e.pidfd, POLLIN, 0});
          owners.emplace_back(&e, true);
        } else {
          wake_at = std::min(wake_at, now + kExitPoll);
        }
        if (!e.terminating) wake_at = std::min(wake_at, e.deadline);
        wake_at = std::min(wake_at, e.kill_at);
        wake_at = std::min(wake_at, e.running_at);
      } else {
        wake_at = std::min(wake_at, e.drain_until);
      }
      if (e.waiting_for_room) wake_at = std::min(wake_at, now + kRoomRecheck);
    }
    int timeout_ms = -1;
    if (wake_at != absl::InfiniteFuture()) {
      timeout_ms = static_cast<int>(
          std::max<int64_t>(0, absl::ToInt64Milliseconds(absl::Ceil(wake_at - now, absl::Milliseconds(1)))));
    }
    if (::poll(fds.data(), fds.size(), timeout_ms) > 0 && fds[0].revents != 0) waker_->Clear();
    for (size_t i = 1; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      Entry& e = *owners[i - 1].first;
      if (owners[i - 1].second) {
        e.exit_seen = true;
        continue;
      }
      size_t want = kChildReadChunk;
      if (e.p.callbacks.read_room) {
        want = static_cast<size_t>(
            std::clamp<uint64_t>(e.p.callbacks.read_room(), kMinOutputRead, kChildReadChunk));
      }
      const ssize_t r = ::read(e.p.child.fd, buf.get(), want);
      if (r > 0) {
        e.p.callbacks.on_output(std::string(buf.get(), static_cast<size_t>(r)));
        // Backpressure: while the agent has no room, the pipe is not read and
        // the process blocks writing to it; cancel and the deadline still act.
        if (e.p.callbacks.wait_for_room && !e.terminating && !e.exited &&
            !e.p.callbacks.wait_for_room(absl::ZeroDuration())) {
          e.waiting_for_room = true;
        }
      } else if (r == 0 || (errno != EINTR && errno != EAGAIN)) {
        e.eof = true;
      }
    }
    const absl::Time after = absl::Now();
    for (auto it = entries.begin(); it != entries.end();) {
      Entry& e = **it;
      if (!e.exited && (e.exit_seen || e.pidfd < 0) && ReapIfExited(e.p.child.pid, &e.status)) {
        e.exited = true;
        e.drain_until = after + kDrainAfterExit;
      }
      if (e.exited && (e.eof || after >= e.drain_until)) {
        End(std::move(*it));
        it = entries.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void ProcessReaper::End(std::unique_ptr<Entry> entry) {
  if (entry->pidfd >= 0) ::close(entry->pidfd);
  ::close(entry->p.child.fd);
  ExitInfo info;
  info.cancelled = entry->cancelled;
  info.timed_out = entry->timed_out;
  if (WIFEXITED(entry->status)) info.exit_code = WEXITSTATUS(entry->status);
  if (WIFSIGNALED(entry->status)) info.signal = WTERMSIG(entry->status);
  info.output_complete = entry->eof;
  const bool slow = entry->p.slow_end;
  auto end = [complete = entry->eof, info = std::move(info), p = std::move(entry->p),
              shared = entry->shared]() mutable {
    if (!complete) {
      p.callbacks.on_output(
          "musafarm: the task exited but a process outside its process group still holds its "
          "output; no longer reading it\n");
    }
    // As docker_run: what the process left is collected unless it was cancelled.
    if (!info.cancelled) {
      info.files = CollectFromWorkDir(
          p.workdir, p.collect, [&](const std::string& line) { p.callbacks.on_output(line + "\n"); });
    }
    p.callbacks.on_exit(std::move(info));
    absl::MutexLock lock(&shared->mu);
    shared->ended = true;
  };
  if (!slow) {
    end();
    return;
  }
  {
    absl::MutexLock lock(&slow_ends_->mu);
    ++slow_ends_->running;
  }
  std::thread([end = std::move(end), ends = slow_ends_]() mutable {
    end();
    absl::MutexLock lock(&ends->mu);
    --ends->running;
  }).detach();
}

}  // namespace musafarm::agent
