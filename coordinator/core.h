#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/limits.h"
#include "coordinator/agent_event_sink.h"
#include "coordinator/agent_policy.h"
#include "coordinator/agent_registry.h"
#include "coordinator/agent_views.h"
#include "coordinator/blob_store.h"
#include "coordinator/core_metrics.h"
#include "coordinator/enrollment.h"
#include "coordinator/heartbeat_pace.h"
#include "coordinator/job_table.h"
#include "coordinator/log_store.h"
#include "coordinator/ready_queue.h"
#include "coordinator/retention_hooks.h"
#include "coordinator/retention_policy.h"
#include "coordinator/store.h"
#include "coordinator/task_state_machine.h"
#include "coordinator/user_api.h"
#include "coordinator/wait_reason.h"
#include "coordinator/watch_hub.h"
#include "musafarm/v1/agent_service.pb.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::coordinator {

// How much scheduling work has been done: read by tests and metrics.
struct SchedulerStats {
  uint64_t passes = 0;          // scheduling passes that looked at the ready set
  uint64_t tasks_examined = 0;  // ready tasks tried against the agents, over all passes
  // Agents a pass looked at (built a view of), over all passes: those that
  // changed and those that would run a class the pass looked at, not all.
  uint64_t agents_viewed = 0;
};

struct CoreOptions {
  // An agent silent this long is disconnected. With agent_lost_timeout, a
  // silent agent's work is re-queued within 15 s; one whose connection closes
  // (killed, host rebooted) within agent_lost_timeout.
  absl::Duration heartbeat_timeout = absl::Seconds(10);
  absl::Duration heartbeat_interval = absl::Seconds(3);
  // --max-heartbeats-per-second: past max_heartbeat_rate x heartbeat_interval
  // agents the interval grows with the farm, and the deadline with it
  // (HeartbeatPace). <= 0: the interval never grows.
  double max_heartbeat_rate = 500;
  // A disconnected agent's attempts are re-queued after this long (it may come
  // back and re-attach them before).
  absl::Duration agent_lost_timeout = absl::Seconds(5);
  // After a coordinator restart every agent is disconnected at once; they
  // reconnect with backoff (at most 5 s apart) and re-attach. Their attempts
  // are re-queued only if they stay away this long.
  absl::Duration restart_grace = absl::Seconds(30);
  // Attempts lost with their agent before the task fails as "agent lost".
  int max_lost_attempts = 2;
  // Plaintext, agents unauthenticated (--insecure). Decides what no policy
  // file means: everything allowed when insecure, nothing that needs trust
  // otherwise.
  bool insecure = true;
  // The --agent-policy file's rules; none: the default above.
  std::optional<AgentPolicy> agent_policy;
  // --max-gpus-per-stage: a stage asking for more is refused at submit. One
  // asking for more than any connected agent has only waits (and says why).
  int max_gpus_per_stage = limits::kDefaultMaxGpusPerStage;
  // --max-log-bytes: a task's log keeps this many bytes and one marker line;
  // later output is dropped and the task goes on (Task.log_truncated).
  uint64_t max_log_bytes = limits::kDefaultMaxLogBytes;
  // --retain, --retain-bytes, --registry: what RunRetention deletes.
  RetentionOptions retention;
  // --webhook-allow: the URL prefixes a job's webhooks must fall under (none:
  // webhooks are refused at submit).
  std::vector<std::string> webhook_allow;
  // --dashboard-url: the dashboard's base URL, for links in notifications.
  std::string dashboard_url;
};

// What retention has done: read by tests and logged.
struct RetentionStats {
  uint64_t passes = 0;
  uint64_t jobs_deleted = 0;
  uint64_t bytes_freed = 0;     // the deleted jobs' stored_bytes
  uint64_t images_deleted = 0;  // registry tags gone
};

// The coordinator's orchestrator: it turns user calls, agent messages and
// ticks into events on its parts and decides what they mean together. Its
// methods live in four files: core.cc (recovery, Apply, Flush, propagation,
// timers), core_user_api.cc (UserApi), core_agents.cc (AgentEventSink, the
// agent protocol) and core_schedule.cc (the scheduling pass).
//   JobTable          jobs, the task index, dependants, secrets
//   TaskStateMachine  every task state change (legality, fencing, results)
//   AgentRegistry     agents, streams, liveness, what each holds
//   ReadyQueue        QUEUED tasks by requirement class, for Schedule
//   WatchHub          watchers and their log catch-up and fan-out
// NOT thread-safe: every method runs on the core EventLoop, so nothing here
// takes a lock and tests drive it directly.
//
// Each event is applied in memory, committed to the Store as one Mutation, and
// only then made visible (messages to agents, watcher events, RPC replies), so
// a crash never shows anything that a restart would forget.
class Core : public AgentEventSink, public UserApi {
 public:
  using ConnId = AgentEventSink::ConnId;
  using WatchId = UserApi::WatchId;

  Core(Store* store, LogStore* logs, const Clock* clock, CoreOptions options);

  // Loads persisted state. Attempts held by agents are kept and wait for their
  // agent to come back for up to agent_lost_timeout.
  absl::Status Recover();

  // --- user API -----------------------------------------------------------
  absl::StatusOr<v1::Job> Submit(const v1::SubmitRequest& request, const std::string& submitter,
                                 std::optional<AuditEntry> audit) override;
  absl::StatusOr<v1::Job> Submit(const v1::SubmitRequest& request, const std::string& submitter) {
    return Submit(request, submitter, std::nullopt);
  }
  // A schedule's run (ScheduleRunner): as Submit, marked with its schedule,
  // slot and the batch priority; `fire` (its run given the job's id) commits
  // in the job's transaction, so the slot is recorded exactly when the job is.
  absl::StatusOr<v1::Job> SubmitScheduled(const v1::SubmitRequest& request,
                                          const std::string& submitter, ScheduleFire fire);
  // Tests and benchmarks: a job without a recorded submitter.
  absl::StatusOr<v1::Job> Submit(const v1::SubmitRequest& request) { return Submit(request, ""); }
  // For each task of `job` that no connected agent could run (WaitVerdict::
  // runnable false), "task <id>: <reason>"; one line when no agent is
  // connected at all. Submit refuses a strict request with these.
  std::vector<std::string> SubmitWarnings(const v1::Job& job) override;
  void WhenDurable(absl::AnyInvocable<void()> fn) override;
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id) const override;
  // Searches the schedule's last runs (the store's, newest first) for the one
  // before `job`'s that submitted a job.
  absl::StatusOr<v1::Job> PreviousRun(const v1::Job& job) const override;
  std::vector<v1::Job> ListJobs(const JobFilter& filter) const override;
  absl::StatusOr<std::string> OwnerOf(const std::string& id) const override;
  absl::StatusOr<v1::CancelResponse> Cancel(const std::string& id) override;
  absl::StatusOr<v1::Job> Rerun(const v1::RerunRequest& request,
                                const std::string& submitter) override;
  std::vector<v1::Agent> ListAgents() const override;
  absl::StatusOr<v1::Agent> Drain(const std::string& agent, bool undrain) override;
  // Persists the revocation (Enrollment::Revoke), ends the agent's stream with
  // UNAUTHENTICATED and loses its attempts at once: it will not be let back.
  absl::StatusOr<v1::RevokeAgentResponse> RevokeAgent(const std::string& agent) override;
  absl::StatusOr<v1::GetLogResponse> GetLog(const v1::GetLogRequest& request) override;
  absl::StatusOr<v1::GetArtifactResponse> GetArtifact(
      const v1::GetArtifactRequest& request) override;
  absl::Status AddWatcher(WatchId id, const v1::WatchJobRequest& request,
                          std::shared_ptr<Watcher> watcher) override;
  void RemoveWatcher(WatchId id) override;
  void WatcherDrained(WatchId id) override;

  // --- agent streams --------------------------------------------------------
  ConnId OnAgentConnected(std::shared_ptr<AgentConnection> conn) override;
  void OnAgentMessage(ConnId conn, const v1::AgentMessage& msg) override;
  void OnAgentGone(ConnId conn) override;

  // Revocations (and the agents' CA): a Register under a revoked name is
  // refused. Not owned; null (tests, until set): no revocations.
  void set_enrollment(Enrollment* enrollment) { enrollment_ = enrollment; }

  // Group commit (EventLoop::PostGrouped carries agent stream events):
  // between BeginGroup and EndGroup, events change memory and queue their
  // writes, messages and watcher events, but nothing is committed or sent;
  // EndGroup commits them all in one transaction (one fsync) and then sends
  // and publishes them, in order. The loop ends a group before any other
  // closure runs, so nothing reads state a restart would forget.
  void BeginGroup() { grouping_ = true; }
  void EndGroup();

  // Periodic housekeeping: heartbeat deadlines and lost agents.
  void Tick();

  // One retention pass (core_retention.cc; every RetentionOptions::interval):
  // deletes at most one batch of finished jobs past their age, then the
  // oldest while the finished jobs hold more than max_bytes (their files
  // first, then their rows), and hands queued registry tags that no remaining
  // or running job names to the image deleter.
  void RunRetention();
  // Not owned; null: no registry deletions (queued tags are dropped).
  void set_image_deleter(ImageDeleter* deleter) { image_deleter_ = deleter; }
  // Not owned; null: nothing pinned.
  void set_retention_pins(RetentionPins* pins) { retention_pins_ = pins; }
  // The content store job inputs are checked against and pinned in (issue 17);
  // without one a submission with inputs is refused. Not owned.
  void set_blob_store(BlobStore* blobs) { blobs_ = blobs; }
  // Called (on the loop) after notifications were committed to the outbox:
  // the sender wakes. Unset: they wait for its next look.
  void set_on_notifications(std::function<void()> fn) { on_notifications_ = std::move(fn); }
  // INVALID_ARGUMENT naming the first of `request`'s webhooks that
  // --webhook-allow does not admit (schedules check theirs when added).
  absl::Status CheckWebhooks(const v1::SubmitRequest& request) const;
  const RetentionStats& retention_stats() const { return retention_stats_; }

  // Closes every agent stream and watcher (coordinator shutdown).
  void Shutdown();

  // Replaces the agent policy (SIGHUP reload; nullopt: no file, see
  // CoreOptions) and places again: work may now go where it could not.
  // Attempts already running stay where they are.
  void SetAgentPolicy(std::optional<AgentPolicy> policy);

  // For tests and metrics.
  uint64_t last_attempt_id() const { return next_attempt_id_ - 1; }
  const SchedulerStats& scheduler_stats() const { return stats_; }
  // Jobs held in memory: the unfinished ones (finished jobs are read from the store).
  size_t jobs_held() const { return jobs_.size(); }
  // The farm's metrics in Prometheus's text format (/metrics).
  std::string RenderMetrics();
  const CoreMetrics& metrics() const { return metrics_; }

 private:
  using Agent = AgentRegistry::Agent;
  using JobEntry = JobTable::Entry;

  // Collects one event's changes; Flush commits them and then publishes.
  struct Pending {
    Mutation mutation;
    std::vector<std::pair<std::string, v1::CoordinatorMessage>> to_agents;
    std::set<std::string> changed_tasks;
    std::vector<std::string> changed_order;  // publication order: first change first
    std::set<std::string> changed_jobs;
    std::vector<absl::AnyInvocable<void()>> after_commit;  // WhenDurable's, in order
  };

  // Submit and SubmitScheduled (`fire` null for a job submitted by hand):
  // the spec expanded and its inputs resolved, then AdmitJob.
  absl::StatusOr<v1::Job> SubmitJob(const v1::SubmitRequest& request,
                                    const std::string& submitter, ScheduleFire* fire,
                                    std::optional<AuditEntry> audit);
  // What a job brings besides its tasks to AdmitJob.
  struct Admission {
    std::string file;                            // names the pipeline in messages
    std::map<std::string, std::string> secrets;  // values by name, checked already
    std::vector<v1::Webhook> webhooks;           // checked against --webhook-allow already
    bool strict = false;                         // refuse tasks no connected agent could run
    ScheduleFire* fire = nullptr;                // a schedule's run, committed with the job
    std::optional<AuditEntry> audit;             // the call's audit line, committed with the job
  };
  // The part of a submission that follows the spec's expansion, shared by
  // submit and rerun: the limits, --strict, the inputs' trees pinned, the job
  // stored (one commit), held and placed. `job` holds its expanded tasks
  // under its new id (the next job number) and its inputs.
  absl::StatusOr<v1::Job> AdmitJob(v1::Job job, const std::string& submitter,
                                   Admission admission);
  // INVALID_ARGUMENT when there are too many secrets or one is too large;
  // names only, never a value.
  static absl::Status CheckSecretLimits(const std::map<std::string, std::string>& secrets,
                                        const std::string& file);
  // An ended job (or task) from the store, with log sizes from the log store.
  absl::StatusOr<v1::Job> StoredJob(const std::string& job_id) const;
  absl::StatusOr<v1::Task> StoredTask(const std::string& task_id) const;
  // A task held in memory or else stored.
  absl::StatusOr<v1::Task> FindAnyTask(const std::string& task_id) const;
  // Every state change goes through here: the machine checks and applies it,
  // the transition joins the pending mutation, and the ready queue follows.
  // False (logged) if the machine refused it.
  bool Apply(v1::Task& task, const TaskEventArgs& args);
  void MarkChanged(const v1::Task& task);
  void OnRegister(ConnId conn, const v1::Register& reg);
  // The task if `attempt_id` is its current attempt, held by `agent`; else
  // tells the agent to stop that attempt and returns null.
  v1::Task* CurrentAttempt(Agent& agent, const std::string& task_id, uint64_t attempt_id);
  void OnStarted(Agent& agent, const v1::AttemptStarted& msg);
  void OnLog(Agent& agent, const v1::LogChunk& chunk);
  void OnResult(Agent& agent, const v1::AttemptResult& result);
  void OnHeartbeat(Agent& agent, const v1::Heartbeat& beat);
  // The farm outgrew the heartbeat interval: every connected agent told a
  // shorter one hears of `interval` (HeartbeatPace), and is allowed its silence.
  void TellPace(absl::Duration interval);
  // Sends KeepImages to every connected agent when the images that unfinished
  // jobs need changed.
  void UpdateKeepImages();
  void OnHandBack(Agent& agent, const v1::HandBack& msg);
  void OnArtifact(Agent& agent, const v1::ArtifactChunk& chunk);
  // Marks the task's attempt lost (agent gone or no longer holding it).
  void LoseAttempt(v1::Task& task, const std::string& why);
  void ReleaseFromAgent(const v1::Task& task);
  // Treats the agent as disconnected now; a non-OK `why` closes its stream.
  void DisconnectAgent(Agent& agent, const absl::Status& why);
  // After a task changed state: queue or skip its dependants and settle the job.
  void Propagate(JobEntry& job, const v1::Task& task);
  void MaybeFinishJob(JobEntry& job);
  // Notifications (core_notify.cc): queues the job's webhooks into the
  // pending mutation, at its end or (for the targets that ask) at its first
  // failed task.
  void NotifyJobEnded(const v1::Job& job);
  void NotifyFirstFailure(const v1::Job& job);
  // The deliveries of `targets` for one event of `job`.
  void QueueDeliveries(const v1::Job& job, const std::vector<v1::Webhook>& targets,
                       bool first_failure);
  // The last lines of a task's log (its current attempt).
  std::string LogTail(const v1::Task& task) const;
  // Retention's two halves (core_retention.cc).
  void ExpireJobs();
  void DeleteQueuedImages();
  void CancelTask(JobEntry& job, v1::Task& task, v1::CancelResponse& response);
  void SendTo(const std::string& agent, v1::CoordinatorMessage msg);
  // Acknowledges `task`'s log up to `offset` to `agent`, or holds the ack
  // while a watcher of the task paces the farm (WatchHub::HoldsAcks).
  void AckLog(const std::string& agent, const v1::Task& task, uint64_t offset);
  // Sends the held acks that no watcher holds any more; drops those of
  // attempts that are no longer current on their agent.
  void ReleaseAcks();
  void SaveAgent(const Agent& agent);
  // Sets the agent's grants and trusted labels from policy_ (also in its info,
  // for `musafarm agents`).
  void ApplyPolicy(Agent& agent);
  // Places ready tasks when something placement depends on changed since the
  // last pass: a task became QUEUED (its requirement class is dirty) or an
  // agent gained room (it is in dirty_agents_). It examines only the classes
  // that can have changed, each in queue order, and stops a class at its first
  // task that fits nowhere: its other tasks fit the same agents. Inside a
  // group it only notes that a pass is due, and EndGroup makes one pass for
  // all of the group's events: a pass looks at every agent, so with 10,000
  // connected one per agent message would cost more than the messages.
  void Schedule();
  void SchedulePass();
  // Sets Task.wait_reason on every queued task from WaitReason over the
  // agents as `views` sees them, one verdict per requirement class, and tells
  // watchers of the tasks whose reason changed. Memory only: the reason is
  // recomputed, never stored. Unless wait_reasons_stale_, only for new
  // classes and those a change of the free slots of `slots_changed` can affect.
  void UpdateWaitReasons(AgentViews& views, const std::set<Agent*>& slots_changed);
  // The agents that would run a requirement class (WouldRun), in name order,
  // as of the registry's roster_version; and, when there are none, the
  // class's wait reason, which then reads nothing that changes before the
  // roster does. Placement and the wait reasons look only at these agents: a
  // pass with 10,000 idle agents of another pool connected costs what it
  // places, not the farm (issue 19).
  struct ClassAgents {
    uint64_t roster = 0;  // AgentRegistry::roster_version when built; 0: never
    std::vector<Agent*> agents;
    std::string none_reason;
  };
  const ClassAgents& AgentsFor(const Requirement& req);
  // Adds a task that became QUEUED to the ready queue, with its class's last
  // wait reason.
  void Enqueue(v1::Task& task, ReadyQueue::Order order);
  // Commits pending_ and publishes it. A failed commit is fatal: memory would
  // otherwise run ahead of what a restart would see. Inside a group: nothing
  // yet (EndGroup flushes).
  void Flush();
  // Debug log: when each assignment of a flush leaves the loop (latency tracing).
  void TraceAssignments(
      const std::vector<std::pair<std::string, v1::CoordinatorMessage>>& to_agents) const;

  Store* const store_;
  LogStore* const logs_;
  const Clock* const clock_;
  const CoreOptions options_;
  const TaskStateMachine machine_;
  AgentPolicy policy_;  // the file's, or the default CoreOptions.insecure implies

  JobTable jobs_;
  AgentRegistry agents_;
  HeartbeatPace pace_;
  WatchHub watchers_;
  // Log acks held for pacing (AckLog), by task: the latest offset only, as an
  // ack covers every byte before it.
  struct HeldAck {
    std::string agent;
    uint64_t attempt = 0;
    uint64_t offset = 0;
  };
  std::map<std::string, HeldAck> held_acks_;
  ReadyQueue ready_;                     // every QUEUED task, by requirement class
  std::set<std::string> dirty_agents_;   // agents that may take work they could not before
  // Each requirement class's wait reason as last computed, and whether an
  // agent changed since (its state, not only its room: a reason may change
  // where placement has nothing new to try).
  std::map<Requirement, std::string> wait_reasons_;
  std::map<Requirement, ClassAgents> class_agents_;  // AgentsFor; classes in ready_
  bool wait_reasons_stale_ = false;
  std::set<std::string> keep_images_;    // last KeepImages sent
  uint64_t next_attempt_id_ = 1;
  Pending pending_;
  bool grouping_ = false;  // between BeginGroup and EndGroup
  bool schedule_due_ = false;  // Schedule() was called inside the group
  SchedulerStats stats_;
  CoreMetrics metrics_;
  bool shutting_down_ = false;
  Enrollment* enrollment_ = nullptr;
  ImageDeleter* image_deleter_ = nullptr;
  RetentionPins* retention_pins_ = nullptr;
  BlobStore* blobs_ = nullptr;
  // The webhooks of unfinished jobs that have them, and whether the first
  // failure was told.
  struct JobWebhooks {
    std::vector<v1::Webhook> targets;
    bool first_failure_sent = false;
  };
  std::map<std::string, JobWebhooks> webhooks_;
  std::function<void()> on_notifications_;
  bool deleting_images_ = false;  // an ImageDeleter::Delete is in flight
  RetentionStats retention_stats_;
  // Tasks of jobs that ended (and left memory) since start, by (state, stage
  // label): the musafarm_tasks gauge keeps counting them.
  std::map<std::pair<std::string, std::string>, int> ended_tasks_;
};

}  // namespace musafarm::coordinator
