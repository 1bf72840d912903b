#pragma once

#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/durable_record.h"
#include "musafarm/agent/agent_state.pb.h"

namespace musafarm::agent {

// Writes the agent's state files (agent_state.h) for the agent loop, so that
// no fsync runs on it between an assignment and its spawn (issue 19):
// WriteVisible overwrites the visible state without fsync, on the caller's thread;
// WriteDurableAsync writes kDurableAgentState with fdatasync on the writer's
// own thread (one for the agent, not one per attempt) and reports when it is
// on disk, while the loop goes on. At most one durable write is in flight;
// the agent gathers every change that arrives meanwhile into the next one.
class StateWriter {
 public:
  explicit StateWriter(std::string work_dir);
  // Finishes the durable write in flight (its `done` is called), then joins.
  ~StateWriter();
  StateWriter(const StateWriter&) = delete;
  StateWriter& operator=(const StateWriter&) = delete;

  // The visible state (kVisibleAgentState's slots), without fsync: what an
  // agent process restarted after a crash reads; a machine crash may leave it
  // old or empty. The first one removes an earlier agent's kAgentStateFile.
  absl::Status WriteVisible(const AgentState& state);
  // On the writer's thread: fdatasync and close each of `sync_fds` (the
  // caller's duplicates of spool files whose bytes the state vouches for),
  // then the durable state (kDurableAgentState); then `done` with
  // the outcome, on that thread (it should only post). Only when no other is
  // in flight (the previous `done` has been called).
  void WriteDurableAsync(const AgentState& state, std::vector<int> sync_fds,
                         absl::AnyInvocable<void(absl::Status)> done);
  // The same on the caller's thread, once the one in flight (if any) is done.
  absl::Status WriteDurableNow(const AgentState& state, std::vector<int> sync_fds = {});

  // For tests: runs on the writer's thread before each durable write (and on
  // the caller's for WriteDurableNow), e.g. to hold it while the test looks.
  void SetBeforeDurableHook(std::function<void()> hook);

 private:
  struct Job {
    std::string bytes;
    std::vector<int> fds;
    absl::AnyInvocable<void(absl::Status)> done;
  };
  void Run();
  absl::Status Durable(const std::string& bytes, const std::vector<int>& fds);

  // An earlier agent's visible state file, until the first WriteVisible.
  std::string old_visible_path_;
  // Written on the caller's thread (the agent loop) only.
  DurableRecord visible_;
  // Written by whichever thread holds busy_ (Durable), one at a time.
  DurableRecord durable_;
  absl::Mutex mu_;
  std::optional<Job> job_ ABSL_GUARDED_BY(mu_);
  bool busy_ ABSL_GUARDED_BY(mu_) = false;  // a durable write is running
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> before_durable_ ABSL_GUARDED_BY(mu_);
  std::thread thread_;
};

}  // namespace musafarm::agent
