#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "agent/agent_state.h"
#include "agent/attempt_phase.h"
#include "agent/coordinator_link.h"
#include "agent/executor/executor.h"
#include "agent/host/gpu.h"
#include "agent/log_spool.h"
#include "agent/send_lead.h"
#include "agent/state_writer.h"
#include "agent/work_dir_pool.h"
#include "common/backoff.h"
#include "common/event_loop.h"
#include "common/redactor.h"

namespace musafarm::agent {

struct AgentOptions {
  std::string name;
  std::vector<std::string> labels;
  int slots = 0;  // 0: the number of CPUs
  std::string work_dir = "musafarm-agent";
  absl::Duration reconnect_initial = absl::Milliseconds(250);
  absl::Duration reconnect_max = absl::Seconds(5);
  GpuInventory gpus;  // advertised in Capabilities; the scheduler hands out ids 0..count-1
  // Bound on unacknowledged log bytes, all attempts together (SpoolBudget);
  // 0: none. At the bound, attempts' output pipes are not read (backpressure).
  uint64_t max_spool_bytes = uint64_t{1} << 30;
  // How long a silent exec attempt's Started waits after its spawn for its
  // result. An attempt whose result is on its way by then (`true`, a test
  // that found nothing to do) sends no Started at all: its result carries the
  // start, the coordinator goes from ASSIGNED to the end in one commit instead
  // of two and its watchers get one event instead of two (issue 19: a batch of
  // no-op tasks went from 0.57 to 0.69 of the spawn loop's rate; submit
  // --watch p50 -0.56 ms). Output or a hand-back sends the held Started
  // first; the exec executor's reaper says when the process has run this
  // long (ExecCallbacks::on_running), so the loop sets no timer per spawn.
  // Both messages carry sent_us, so the coordinator still dates the start to
  // the spawn. Zero: sent at once, as for Docker stages always.
  absl::Duration started_hold = absl::Milliseconds(5);
  // On Shutdown(): how long running attempts may go on before they are
  // stopped and handed back. Zero: at once; InfiniteDuration: no deadline.
  absl::Duration drain_timeout = absl::Minutes(10);
  // Once no attempt runs any more during a shutdown: how long to wait for the
  // results to be acknowledged before closing the stream anyway.
  absl::Duration final_ack_timeout = absl::Seconds(10);
  // Below this many free bytes in the work dir's file system the agent takes
  // no new work (Heartbeat.unavailable_reason "low disk: ..."); 0: no check.
  uint64_t min_free_disk = uint64_t{5} << 30;
  // Called on the agent loop at each measurement (start, every heartbeat)
  // that finds free space below min_free_disk, e.g. to prune images, with the
  // images nobody may remove: those the coordinator's KeepImages names (its
  // unfinished jobs) and those of this agent's attempts. Must not block: hand
  // the work to a thread of its own, and expect repeated calls while space
  // stays low.
  std::function<void(std::set<std::string> keep)> on_low_disk;
  // Called on the agent loop with the images a docker attempt uses, when it
  // starts and when it ends (for the pruner's least-recently-used order).
  std::function<void(const std::vector<std::string>& images)> on_images_used;
  // Measures the free bytes of the file system holding `dir`; empty:
  // statvfs (FreeDiskBytes). For tests.
  std::function<absl::StatusOr<uint64_t>(const std::string& dir)> free_disk;

  // Host health (issue 16, item 3). Empty functions: healthy.
  // Why the Docker daemon does not answer now, "" when it does (e.g. the last
  // verdict of a DaemonWatcher). Called on the agent loop: must not block.
  // While non-empty the agent takes no docker work (Heartbeat.unavailable_kinds)
  // and hands back docker assignments unstarted; exec stages still run.
  std::function<std::string()> docker_unreachable;
  // Called on the agent loop when a docker attempt failed because the daemon
  // did not answer (ExitInfo.host_lost), before the agent says so in a
  // heartbeat: e.g. DaemonWatcher::MarkDown. Must not block.
  std::function<void(const std::string& why)> on_docker_lost;
  // The GPUs that failed their probe, with why (GpuHealth::Fenced): never
  // handed out (Heartbeat.fenced_gpus). Called on the loop: must not block.
  std::function<std::map<int32_t, std::string>()> fenced_gpus;
  // Called on a GPU attempt's own thread once it has exited, with its GPUs;
  // blocks while it probes them (GpuHealth::Check) and returns why any
  // failed, "" when all pass. A failed attempt with a failing GPU is handed
  // back, to run again elsewhere without using a retry.
  std::function<std::string(const std::vector<int32_t>& gpus)> probe_gpus;

  // For tests: runs on the state writer's thread before each durable write
  // of the state (StateWriter::SetBeforeDurableHook).
  std::function<void()> before_durable_state_write;
};

// The agent daemon: keeps one session with the coordinator through its
// CoordinatorLink (reconnecting with jittered backoff), runs assigned attempts
// through the Executor, and streams their output and results back. It knows
// no transport: tests drive it through a FakeCoordinatorLink.
//
// Nothing lost: output waits in a per-attempt spool file until the coordinator
// acknowledges it (LogSpool, under <work-dir>/spool/), so a coordinator restart
// or outage loses nothing: on reconnect the agent lists the attempts it holds
// and resends from the acknowledged offset. All attempts together hold at most
// max_spool_bytes unacknowledged; at that bound the executors stop reading
// output pipes and the processes block on write until acknowledgements free
// room (nothing is dropped). Results stay in memory until acknowledged.
//
// Nothing stuck: what runs is recorded in <work-dir>/agent-state.pb (and
// agent-state.durable.{0,1}: agent_state.h), written once per loop turn for all
// the changes of the turn, before any attempt assigned in it starts.
// Start() reads it first: process groups of an
// earlier run (verified by their start time) are killed, the executors remove
// their leftovers (containers), old task and spool directories are removed,
// and none of those attempts is listed at registration, so the coordinator
// re-queues them at once. Only one agent uses a work dir at a time (a lock).
//
// Nothing run twice: an attempt that finishes is recorded as finished with its
// result, durably (its spool synced, the state fsync'd) before the result is
// sent, so
// that one whose result was not acknowledged before the agent died (or
// stopped) is not re-queued: the next run keeps its spool, result and
// artifacts, lists it as held and finished at registration and, once the
// coordinator says how much of the log it has, sends the rest, the artifacts
// and the result, as after a reconnect. One whose files do not add up is
// removed like a running one.
//
// Shutdown() (SIGTERM): no new work (heartbeat unavailable_reason "shutting
// down"; an assignment that still arrives is handed back unstarted), running
// attempts get drain_timeout to finish, then are stopped and handed back
// (HandBack). Once nothing runs, results get final_ack_timeout to be
// acknowledged, then the stream is half-closed and the agent is stopped.
//
// Nothing an attempt produces leaves the agent with a secret value of its
// assignment in it: output passes through the attempt's Redactor before it is
// given log offsets (offsets count the redacted bytes), collected files are
// redacted in place before they are measured, parsed or sent, and so is the
// result's error text.
//
// Each attempt's life is one AttemptPhase (attempt_phase.h) changed only by
// legal events; the agent acts on what the transition says.
//
// All state lives on the agent's EventLoop; link and executor callbacks only
// post to it (except SpoolBudget, which executors wait on).
class Agent {
 public:
  // Log bytes sent but not yet acknowledged, for the whole agent (see
  // agent.cc, ShareOf). 2 MiB (was 4): with the pipe and SendLead::kMax it is
  // the queue ahead of a watcher that paces the farm, and at 4 MiB four tasks
  // printing at once kept p99 line delays over 100 ms (issue 19, BENCHMARKS.md).
  static constexpr uint64_t kSendWindow = 2 << 20;

  // `link` reaches the coordinator and must outlive the agent; `exec` runs
  // exec/shell stages; `docker`, if given, the three docker kinds.
  Agent(AgentOptions options, CoordinatorLink* link, Executor* exec, Executor* docker = nullptr);
  ~Agent();  // Stop()

  // Validates options, locks the work dir, removes what an earlier run left
  // (see the class comment), starts the loop and the first connection.
  absl::Status Start();
  // The host's health changed (docker_unreachable or fenced_gpus say
  // something new): tells the coordinator now. Thread-safe.
  void HostHealthChanged();
  // Begins a graceful stop (see the class comment); returns at once.
  // Thread-safe; later calls do nothing.
  void Shutdown();
  // Shutdown(), and stops and hands back running attempts now instead of at
  // the drain deadline (a second SIGTERM). Thread-safe.
  void HandBackNow();
  // Waits up to `timeout` for a shutdown to finish (the stream is closed), or
  // for the coordinator to refuse this agent for good; true when either has.
  bool WaitStopped(absl::Duration timeout);
  // Once WaitStopped: why the coordinator refused this agent for good
  // (FAILED_PRECONDITION: a protocol version it cannot serve); OK when it did
  // not. The process then exits non-zero instead of retrying forever.
  absl::Status refusal() const { return refusal_; }
  // HandBackNow(), waits for the end (bounded), stops the loop and joins the
  // executions. Idempotent.
  void Stop();

 private:
  struct Attempt {
    v1::Assignment assignment;
    AttemptLife life;
    std::unique_ptr<Execution> execution;
    std::string workdir;
    std::unique_ptr<LogSpool> spool;  // log bytes [base, total) not yet acknowledged
    std::string spool_error;          // output could not be kept: the attempt fails
    uint64_t sent = 0;                // bytes sent on the current session
    // Bounds how far the task's output runs ahead of `sent` (its executor's
    // wait_for_room); shared with the executor's thread.
    std::shared_ptr<SendLead> lead = std::make_shared<SendLead>();
    std::string hand_back_reason;     // kStoppingHandBack: why
    int64_t started_us = 0;
    // Spawned, and its Started not sent yet (started_hold): the result drops
    // it, anything else sends it first (FlushStarted).
    bool started_held = false;
    v1::AttemptResult result;
    std::vector<CollectedFile> files;  // sent as artifacts before the result
    std::vector<std::string> secrets;  // every form of the assignment's secret values
    Redactor redactor;                 // of `secrets`, over the attempt's output
    // Past assignment.max_log_bytes: the marker is spooled, the rest counted and dropped.
    bool log_cut = false;
    uint64_t log_dropped = 0;
    std::vector<RecordedProcess> processes;  // for the state file
    AttemptTraces traces;                    // its executor's, for the state file
    // Finished and recorded for a restarted agent to report (PersistResult):
    // the state holds the result (result_bytes). The spool file is then kept
    // by Stop().
    bool persisted = false;
    std::string result_bytes;
    // False until a state file records the result (the visible one, written
    // at the end of the turn it finished in; else the durable one): it waits
    // (Pump), so that an agent process killed after sending it finds it again.
    bool result_recorded = true;
    // A result file an older agent wrote (recovered); removed with the attempt.
    std::string result_path;
    // Assigned and recorded, not yet started: FlushState starts it once the
    // state that lists it is written.
    bool start_pending = false;
    bool cancel_before_start = false;  // a cancel came while start_pending
    std::string start_error;           // why it cannot start (its work dir)
    // Its work dir may go back to work_dirs_: an exec attempt whose output
    // reached its end (ExitInfo::output_complete).
    bool dir_reusable = false;
    uint64_t base() const { return spool ? spool->base() : 0; }
    uint64_t total() const { return spool ? spool->total() : 0; }
  };
  static std::string Key(const std::string& task, uint64_t attempt);

  std::string StatePath() const;
  absl::Status LockWorkDir();
  // Before the first connection: removes what an earlier run left.
  void RemoveLeftovers();
  // Rebuilds an attempt that had finished in an earlier run from its state
  // record, result and spool files; nothing is changed on an error.
  absl::Status Recover(const RecordedAttempt& r);
  // Records the finished attempt with its result, durably, so that a
  // restarted agent reports it (Recover); its result is sent once that is on
  // disk (OnStateDurable).
  void PersistResult(const std::string& key, Attempt& a);
  // The state changed: written at the end of the loop turn (FlushState), at
  // once outside a turn. `durable`: it must also reach disk (a finished
  // attempt), which happens off the loop (StateWriter).
  void SaveState(bool durable = false);
  // Writes both state files now, on the calling thread (Start); false
  // (logged) when it cannot.
  bool WriteStateNow();
  // End of a loop turn: writes the state once for all its changes, then
  // starts the attempts assigned in it.
  void FlushState();
  // Hands the emptied work dirs of the attempts Forget dropped to work_dirs_
  // (before the turn's starts); RemoveForgotten removes the rest after them.
  void PoolForgotten();
  // Removes the files of the attempts Forget dropped (to_remove_).
  void RemoveForgotten();
  void WriteState();
  AgentState Snapshot();
  // Duplicates of the spool files of `keys` that hold bytes the coordinator
  // has not acknowledged, for the state writer to sync.
  std::vector<int> SpoolsToSync(const std::vector<std::string>& keys) const;
  void StartDurable(const AgentState& state);
  void OnStateDurable(const std::vector<std::string>& keys, const absl::Status& status);
  // A state file records the results of `keys`: they may go out.
  void ReleaseResults(const std::vector<std::string>& keys);
  void StartExecution(const std::string& key);
  void SendStarted(const Attempt& a);  // with a.started_us
  // Sends a's Started now if it is held.
  void FlushStarted(Attempt& a);

  // Applies `event` to the attempt's phase; an illegal one is logged and
  // changes nothing (false).
  bool Apply(Attempt& a, AttemptEvent event);

  void Connect();
  void OnMessage(uint64_t generation, const v1::CoordinatorMessage& msg);
  void OnSessionEnd(uint64_t generation, const absl::Status& status);
  void OnAssignment(const v1::Assignment& a);
  void OnCancel(const v1::CancelAttempt& c);
  void OnAck(const v1::Ack& ack);
  void OnOutput(const std::string& key, std::string data, size_t raw_size);
  void OnProcess(const std::string& key, pid_t leader);
  // Adds already redacted bytes to the attempt's log, up to assignment.max_log_bytes and a marker.
  void AppendLog(Attempt& a, std::string output);
  void OnExit(const std::string& key, ExitInfo info);
  void Pump(Attempt& a);
  // Whether the attempt's log goes out now (Pump sends it).
  bool Sending(const Attempt& a) const;
  // How many attempts share the link now: `a` and those with log bytes not
  // yet acknowledged.
  size_t Sharing(const Attempt& a) const;
  // Tells the attempt's SendLead what is unsent, whether it is being sent and
  // its share of the lead.
  void UpdateLead(Attempt& a);
  void SendArtifacts(Attempt& a);
  void SendHandBack(const v1::Assignment& as, const std::string& reason);
  void Send(v1::AgentMessage msg);
  void Heartbeat(uint64_t generation);
  void SendHeartbeat();
  void Forget(const std::string& key);

  // Disk: measures free space and updates disk_reason_.
  void MeasureDisk();
  std::string UnavailableReason() const;
  // Host health, as Register and Heartbeat carry it (issue 16, item 3).
  std::string DockerUnreachable() const;
  template <typename M>
  void SetHostHealth(M* m) const;

  // Shutdown steps, on the loop.
  void BeginShutdown();
  void HandBackRunning(const std::string& reason);
  void CheckShutdown();
  void CloseStream();
  void Stopped();

  const AgentOptions options_;
  CoordinatorLink* const link_;
  Executor* const exec_executor_;
  Executor* const docker_executor_;  // may be null: no Docker on this host
  SpoolBudget budget_;               // thread-safe
  EventLoop loop_;
  // After loop_: destroyed first, its last report posted to a loop still there.
  std::unique_ptr<StateWriter> state_writer_;
  Backoff backoff_;
  int lock_fd_ = -1;
  bool started_ = false;        // Start() succeeded: the loop runs
  bool joined_ = false;         // Stop() has finished
  absl::Notification stopped_;  // the shutdown has closed the session

  // Loop-only state.
  std::shared_ptr<CoordinatorSession> session_;
  std::string session_target_;  // the coordinator address session_ was opened to
  uint64_t generation_ = 0;
  bool registered_ = false;
  absl::Duration heartbeat_interval_ = absl::Seconds(3);
  int failures_ = 0;
  std::map<std::string, Attempt> attempts_;
  // The state files (FlushState): loop-only, and Start/Stop while the loop
  // does not run.
  uint64_t state_seq_ = 0;          // AgentState.sequence of the last snapshot
  bool state_dirty_ = false;        // changed since the last snapshot written
  bool durable_wanted_ = false;     // ... by a change that must reach disk
  bool durable_in_flight_ = false;  // the state writer is syncing one
  bool in_turn_ = false;            // inside a group of the loop (its end flushes)
  bool flushing_ = false;
  std::vector<std::string> to_start_;           // recorded once the state is written
  // Files of forgotten attempts, removed after the turn's starts (Forget).
  struct Removal {
    std::string key;
    std::string workdir;      // empty: pooled already (PoolForgotten)
    std::string result_path;  // empty: none
    bool dir_reusable = false;  // Attempt::dir_reusable
  };
  std::vector<Removal> to_remove_;
  // Emptied work dirs for the next attempts (one per slot at most).
  WorkDirPool work_dirs_;
  std::vector<std::string> awaiting_durable_;  // results for the next durable write
  std::vector<std::string> awaiting_record_;   // results for the next visible write
  // Register.instance_secret, kept in the state file; never logged. Empty
  // only when none could be made (the coordinator then sees an old agent).
  std::string instance_secret_;
  uint64_t free_disk_ = 0;   // last measured; 0 unknown
  std::string disk_reason_;  // non-empty: low disk
  std::set<std::string> keep_images_;  // the coordinator's last KeepImages
  bool spool_full_logged_ = false;
  bool shutting_down_ = false;
  bool handing_back_ = false;        // the drain deadline has passed
  bool final_wait_started_ = false;  // nothing runs; waiting for acks
  bool final_wait_over_ = false;
  bool closing_ = false;  // the session is being closed for good
  absl::Status refusal_;  // written before stopped_ is notified, read after
};

}  // namespace musafarm::agent
