#include "agent/state_writer.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "agent/agent_state.h"

namespace musafarm::agent {
namespace {

void CloseAll(const std::vector<int>& fds) {
  for (int fd : fds) ::close(fd);
}

}  // namespace

StateWriter::StateWriter(std::string work_dir)
    : old_visible_path_(absl::StrCat(work_dir, "/", kAgentStateFile)),
      visible_(absl::StrCat(work_dir, "/", kVisibleAgentState)),
      durable_(absl::StrCat(work_dir, "/", kDurableAgentState)) {
  thread_ = std::thread([this] { Run(); });
}

StateWriter::~StateWriter() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void StateWriter::SetBeforeDurableHook(std::function<void()> hook) {
  absl::MutexLock lock(&mu_);
  before_durable_ = std::move(hook);
}

absl::Status StateWriter::WriteVisible(const AgentState& state) {
  absl::StatusOr<std::string> bytes = SerializeAgentState(state);
  if (!bytes.ok()) return bytes.status();
  if (absl::Status s = visible_.Write(*bytes, DurableRecord::Sync::kVisible); !s.ok()) return s;
  if (!old_visible_path_.empty()) {
    // Older than what was just written, which LoadAgentState prefers anyway.
    ::unlink(old_visible_path_.c_str());
    old_visible_path_.clear();
  }
  return absl::OkStatus();
}

void StateWriter::WriteDurableAsync(const AgentState& state, std::vector<int> sync_fds,
                                    absl::AnyInvocable<void(absl::Status)> done) {
  absl::StatusOr<std::string> bytes = SerializeAgentState(state);
  if (!bytes.ok()) {
    CloseAll(sync_fds);
    done(bytes.status());
    return;
  }
  absl::MutexLock lock(&mu_);
  job_ = Job{*std::move(bytes), std::move(sync_fds), std::move(done)};
}

absl::Status StateWriter::WriteDurableNow(const AgentState& state, std::vector<int> sync_fds) {
  absl::StatusOr<std::string> bytes = SerializeAgentState(state);
  if (!bytes.ok()) {
    CloseAll(sync_fds);
    return bytes.status();
  }
  {
    // The lock is not held across the write: the writer's thread only waits.
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](StateWriter* w) {
          w->mu_.AssertHeld();
          return !w->busy_ && !w->job_.has_value();
        },
        this));
    busy_ = true;
  }
  absl::Status s = Durable(*bytes, sync_fds);
  absl::MutexLock lock(&mu_);
  busy_ = false;
  return s;
}

void StateWriter::Run() {
  for (;;) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](StateWriter* w) {
            w->mu_.AssertHeld();
            return (w->stop_ || w->job_.has_value()) && !w->busy_;
          },
          this));
      if (!job_.has_value()) return;  // stopping, nothing left
      job = *std::move(job_);
      job_.reset();
      busy_ = true;
    }
    absl::Status s = Durable(job.bytes, job.fds);
    {
      absl::MutexLock lock(&mu_);
      busy_ = false;
    }
    job.done(std::move(s));
  }
}

absl::Status StateWriter::Durable(const std::string& bytes, const std::vector<int>& fds) {
  std::function<void()> hook;
  {
    absl::MutexLock lock(&mu_);
    hook = before_durable_;
  }
  if (hook) hook();  // not under the lock: it may block
  absl::Status s = absl::OkStatus();
  // The log bytes first: the state's finished records vouch for them.
  for (int fd : fds) {
    if (s.ok() && ::fdatasync(fd) != 0) {
      s = absl::InternalError(absl::StrCat("cannot sync a spool file: ", std::strerror(errno)));
    }
    ::close(fd);
  }
  if (!s.ok()) return s;
  return durable_.Write(bytes);
}

}  // namespace musafarm::agent
