#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "coordinator/agent_event_sink.h"
#include "coordinator/log_store.h"
#include "coordinator/ready_queue.h"
#include "coordinator/store.h"
#include "coordinator/task_state_machine.h"
#include "coordinator/user_api.h"
#include "musafarm/v1/agent_service.pb.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::coordinator {

// How much scheduling work has been done: read by tests and metrics.
struct SchedulerStats {
  uint64_t passes = 0;          // scheduling passes that looked at the ready set
  uint64_t tasks_examined = 0;  // ready tasks tried against the agents, over all passes
};

struct CoreOptions {
  // An agent silent this long is disconnected. With agent_lost_timeout, a
  // silent agent's work is re-queued within 15 s; one whose connection closes
  // (killed, host rebooted) within agent_lost_timeout.
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  absl::Duration heartbeat_interval = absl::Seconds(3);
  // A disconnected agent's attempts are re-queued after this long (it may come
  // back and re-attach them before).
  absl::Duration agent_lost_timeout = absl::Seconds(5);
  // After a coordinator restart every agent is disconnected at once; they
  // reconnect with backoff (at most 5 s apart) and re-attach. Their attempts
  // are re-queued only if they stay away this long.
  absl::Duration restart_grace = absl::Seconds(30);
  // Attempts lost with their agent before the task fails as "agent lost".
  int max_lost_attempts = 2;
};

// The farm's state and every decision about it: jobs, tasks, attempts, agents,
// placement, watchers. NOT thread-safe: every method runs on the core
// EventLoop, so nothing here takes a lock and tests drive it directly.
//
// Each event is applied in memory, committed to the Store as one Mutation, and
// only then made visible (messages to agents, watcher events, RPC replies), so
// a crash never shows anything that a restart would forget.
class Core : public AgentEventSink, public UserApi {
 public:
  using ConnId = uint64_t;
  using WatchId = uint64_t;

  Core(Store* store, LogStore* logs, const Clock* clock, CoreOptions options);

  // Loads persisted state. Attempts held by agents are kept and wait for their
  // agent to come back for up to agent_lost_timeout.
  absl::Status Recover();

  // --- user API -----------------------------------------------------------
  absl::StatusOr<v1::Job> Submit(const v1::SubmitRequest& request) override;
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id) const override;
  std::vector<v1::Job> ListJobs(int limit) const override;  // newest first, no tasks
  absl::StatusOr<v1::CancelResponse> Cancel(const std::string& id) override;
  std::vector<v1::Agent> ListAgents() const override;
  absl::StatusOr<v1::Agent> Drain(const std::string& agent, bool undrain) override;
  absl::StatusOr<v1::GetLogResponse> GetLog(const v1::GetLogRequest& request) override;
  absl::StatusOr<v1::GetArtifactResponse> GetArtifact(
      const v1::GetArtifactRequest& request) override;
  absl::Status AddWatcher(WatchId id, const v1::WatchJobRequest& request,
                          std::shared_ptr<Watcher> watcher) override;
  void RemoveWatcher(WatchId id) override;

  // --- agent streams --------------------------------------------------------
  ConnId OnAgentConnected(std::shared_ptr<AgentConnection> conn) override;
  void OnAgentMessage(ConnId conn, const v1::AgentMessage& msg) override;
  void OnAgentGone(ConnId conn) override;

  // Periodic housekeeping: heartbeat deadlines and lost agents.
  void Tick();

  // Closes every agent stream and watcher (coordinator shutdown).
  void Shutdown();

  // For tests and metrics.
  uint64_t last_attempt_id() const { return next_attempt_id_ - 1; }
  const SchedulerStats& scheduler_stats() const { return stats_; }

 private:
  struct TaskRef {
    std::string job_id;
    size_t index = 0;
  };
  struct AgentEntry {
    v1::Agent info;
    ConnId conn = 0;  // 0: not connected
    absl::Time disconnected_at = absl::InfinitePast();
    // Its attempts are re-queued once the clock passes this (while disconnected).
    absl::Time lose_at = absl::InfiniteFuture();
    absl::Time last_seen = absl::InfinitePast();
    std::set<std::string> tasks;  // task ids whose current attempt it holds
  };
  struct JobEntry {
    v1::Job job;
    uint64_t seq = 0;  // position in submission order: the ready queue's order
    bool cancel_requested = false;
    std::map<std::string, size_t> index;                    // task id -> position in job.tasks
    std::map<std::string, std::vector<size_t>> dependants;  // task id -> tasks needing it
    // Secret values (name -> value) until the job ends; never in `job`.
    std::map<std::string, std::string> secrets;
  };
  struct ConnEntry {
    std::shared_ptr<AgentConnection> conn;
    std::string agent;  // empty until registered
    absl::Time opened;
  };
  struct WatchEntry {
    std::string job_id;
    std::string task_id;  // filter; empty: all
    bool logs = false;
    struct Sent {
      uint64_t attempt = 0;
      uint64_t bytes = 0;
    };
    // Log bytes sent per task; a new attempt's log starts again from 0.
    std::map<std::string, Sent> sent;
    uint64_t& SentFor(const std::string& task, uint64_t attempt) {
      Sent& s = sent[task];
      if (s.attempt != attempt) s = Sent{attempt, 0};
      return s.bytes;
    }
    std::shared_ptr<Watcher> watcher;
  };

  // Collects one event's changes; Flush commits them and then publishes.
  struct Pending {
    Mutation mutation;
    std::vector<std::pair<std::string, v1::CoordinatorMessage>> to_agents;
    std::set<std::string> changed_tasks;
    std::vector<std::string> changed_order;  // publication order: first change first
    std::set<std::string> changed_jobs;
  };

  v1::Task* FindTask(const std::string& task_id);
  // GPU numbers held by the current attempts of the tasks `agent` holds.
  std::set<int32_t> UsedGpus(const AgentEntry& agent) const;
  JobEntry* FindJob(const std::string& job_id);
  // Every state change goes through here: the machine checks and applies it,
  // and the transition joins the pending mutation. False (logged) if refused.
  bool Apply(v1::Task& task, const TaskEventArgs& args);
  void MarkChanged(const v1::Task& task);
  void OnRegister(ConnId conn, const v1::Register& reg);
  // The task if `attempt_id` is its current attempt, held by `agent`; else
  // tells the agent to stop that attempt and returns null.
  v1::Task* CurrentAttempt(AgentEntry& agent, const std::string& task_id, uint64_t attempt_id);
  void OnStarted(AgentEntry& agent, const v1::AttemptStarted& msg);
  void OnLog(AgentEntry& agent, const v1::LogChunk& chunk);
  void OnResult(AgentEntry& agent, const v1::AttemptResult& result);
  void OnHeartbeat(AgentEntry& agent, const v1::Heartbeat& beat);
  // Images that unfinished jobs refer to, which no agent may prune.
  std::set<std::string> ImagesOfRunningJobs() const;
  // Sends KeepImages to every connected agent when that set changed.
  void UpdateKeepImages();
  void OnHandBack(AgentEntry& agent, const v1::HandBack& msg);
  void OnArtifact(AgentEntry& agent, const v1::ArtifactChunk& chunk);
  // Marks the task's attempt lost (agent gone or no longer holding it).
  void LoseAttempt(v1::Task& task, const std::string& why);
  void ReleaseFromAgent(v1::Task& task);
  // Treats the agent as disconnected now and closes its stream; the stream's
  // own end, when it comes, changes nothing more.
  void DisconnectAgent(AgentEntry& agent, const absl::Status& why);
  // After a task ended: queue or skip its dependants and settle the job.
  void Propagate(JobEntry& job, const v1::Task& task);
  void MaybeFinishJob(JobEntry& job);
  void CancelTask(JobEntry& job, v1::Task& task, v1::CancelResponse& response);
  void SendTo(const std::string& agent, v1::CoordinatorMessage msg);
  void SaveAgent(const AgentEntry& agent);
  // Places ready tasks when something placement depends on changed since the
  // last pass: a task became QUEUED (its requirement class is dirty) or an
  // agent gained room (it is in dirty_agents_). It examines only the classes
  // that can have changed, each in queue order, and stops a class at its first
  // task that fits nowhere: its other tasks fit the same agents.
  void Schedule();
  // A task's place in the ready queue.
  ReadyQueue::Order QueueOrder(const v1::Task& task) const;
  // Commits pending_ and publishes it. A failed commit is fatal: memory would
  // otherwise run ahead of what a restart would see.
  void Flush();
  void SendLogToWatchers(const std::string& task_id, uint64_t attempt, uint64_t offset,
                         const std::string& data);
  void CatchUpLogs(WatchEntry& w, const v1::Task& task);

  Store* const store_;
  LogStore* const logs_;
  const Clock* const clock_;
  const CoreOptions options_;
  const TaskStateMachine machine_;

  std::map<std::string, JobEntry> jobs_;  // by id
  std::set<std::string> keep_images_;     // last KeepImages sent
  std::vector<std::string> job_order_;    // submission order
  std::map<std::string, TaskRef> task_index_;
  std::map<std::string, AgentEntry> agents_;  // by name
  std::map<ConnId, ConnEntry> conns_;
  std::map<WatchId, WatchEntry> watchers_;
  ConnId next_conn_ = 1;
  uint64_t next_attempt_id_ = 1;
  int64_t next_job_number_ = 1;
  Pending pending_;
  ReadyQueue ready_;                     // every QUEUED task, by requirement class
  std::set<std::string> dirty_agents_;   // agents that may take work they could not before
  SchedulerStats stats_;
  bool shutting_down_ = false;
};

}  // namespace musafarm::coordinator
