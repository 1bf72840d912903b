// Core, part 1 of 4: construction, recovery, the one path of every state
// change (Apply), commit-then-publish (Flush), propagation and job ends,
// image retention, timers and shutdown. The user API, the agent protocol and
// the scheduling pass are core_user_api.cc, core_agents.cc and core_schedule.cc.
#include "coordinator/core.h"

#include <algorithm>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/logging.h"
#include "common/task_state.h"
#include "coordinator/agent_messages.h"

namespace musafarm::coordinator {

namespace {

// The store could not take what memory already holds: a lost PostgreSQL
// connection, a full or failing disk. Not a bug, so no abort and core dump:
// say why and exit 3, as a coordinator that lost the lead does; its
// supervisor restarts it, and the restart recovers from the store (on
// PostgreSQL as the active or a standby). Nothing acknowledged is lost:
// acknowledgements and answers go out only after this point.
[[noreturn]] void StopOnStoreFailure(const char* what, const absl::Status& why) {
  auto log = GetLogger("core");
  log->critical("{} failed: {}; exiting (restart the coordinator: it recovers every acknowledged "
                "change from the store)",
                what, why.ToString());
  log->flush();
  spdlog::shutdown();
  std::_Exit(3);
}

}  // namespace
namespace {

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("core");
  return log;
}

AgentRegistry::Timing TimingOf(const CoreOptions& o) {
  AgentRegistry::Timing t;
  t.heartbeat_timeout = o.heartbeat_timeout;
  t.agent_lost_timeout = o.agent_lost_timeout;
  t.restart_grace = o.restart_grace;
  return t;
}

}  // namespace

Core::Core(Store* store, LogStore* logs, const Clock* clock, CoreOptions options)
    : store_(store),
      logs_(logs),
      clock_(clock),
      options_(options),
      machine_(options.max_lost_attempts),
      policy_(AgentPolicy::Effective(options.agent_policy, options.insecure)),
      agents_(TimingOf(options)),
      pace_({options.heartbeat_interval, options.heartbeat_timeout, options.max_heartbeat_rate}),
      watchers_(logs, clock) {}

absl::Status Core::Recover() {
  // Finished jobs stay in the store (read on demand): a coordinator with a
  // long history starts as fast as one without.
  absl::StatusOr<std::vector<v1::Job>> jobs = store_->archive().LoadUnfinishedJobs();
  if (!jobs.ok()) return jobs.status();
  absl::StatusOr<int64_t> max_job = store_->archive().MaxJobNumber();
  if (!max_job.ok()) return max_job.status();
  jobs_.ReserveJobNumbers(*max_job);
  absl::StatusOr<std::vector<v1::Agent>> agents = store_->LoadAgents();
  if (!agents.ok()) return agents.status();
  absl::StatusOr<std::map<std::string, std::map<std::string, std::string>>> secrets =
      store_->LoadSecrets();
  if (!secrets.ok()) return secrets.status();
  const absl::Time now = clock_->Now();
  for (v1::Agent& a : *agents) ApplyPolicy(agents_.Restore(std::move(a), now));
  int resumed = 0;
  for (v1::Job& job : *jobs) {
    std::map<std::string, std::string> job_secrets;
    if (auto it = secrets->find(job.id()); it != secrets->end()) job_secrets = std::move(it->second);
    JobEntry& entry = jobs_.Add(std::move(job), std::move(job_secrets));
    for (size_t i = 0; i < static_cast<size_t>(entry.job.tasks_size()); ++i) {
      v1::Task& task = *entry.job.mutable_tasks(static_cast<int>(i));
      next_attempt_id_ = std::max(next_attempt_id_, task.attempt_id() + 1);
      if (task.attempt_id() != 0) task.set_log_size(logs_->Size(task.id(), task.attempt_id()));
      if (task.state() == v1::TASK_STATE_QUEUED) Enqueue(task, {entry.seq, i});
      metrics_.OnTaskKnown(task, now);
      if (IsActive(task.state())) {
        Agent& agent = agents_.RestoreHolder(task.agent(), now);
        agents_.Hold(agent, task.id(), {task.gpu_ids().begin(), task.gpu_ids().end()});
        ++resumed;
      }
    }
  }
  keep_images_ = jobs_.ImagesInUse();
  absl::StatusOr<std::map<std::string, std::vector<v1::Webhook>>> hooks =
      store_->webhooks().LoadJobWebhooks();
  if (!hooks.ok()) return hooks.status();
  for (auto& [job_id, targets] : *hooks) {
    const JobEntry* entry = jobs_.Find(job_id);
    if (entry == nullptr) continue;  // ended: its notifications are in the outbox
    JobWebhooks& w = webhooks_[job_id];
    w.targets = std::move(targets);
    // A failure before the restart was told then.
    for (const v1::Task& t : entry->job.tasks()) {
      if (t.state() == v1::TASK_STATE_FAILED || t.state() == v1::TASK_STATE_TIMED_OUT) {
        w.first_failure_sent = true;
      }
    }
  }
  Log()->info("recovered {} unfinished jobs, {} agents, {} attempts awaiting their agents; next job {}",
              jobs_.size(), agents_.agents().size(), resumed, jobs_.next_job_number());
  return absl::OkStatus();
}

bool Core::Apply(v1::Task& task, const TaskEventArgs& args) {
  absl::StatusOr<Transition> t = machine_.Apply(task, args, clock_->Now());
  if (!t.ok()) {
    // The core checks before it asks, so this is a bug; the machine refused
    // it and the task is unchanged, which is safer than stopping the farm.
    Log()->error("{}", t.status().ToString());
    return false;
  }
  Log()->info("task={} attempt={} {} -> {}{}{}", task.id(), task.attempt_id(),
              TaskStateName(t->from), TaskStateName(t->to), t->reason.empty() ? "" : ": ",
              t->reason);
  metrics_.OnTransition(task, t->from, t->to, clock_->Now());
  if (t->from == v1::TASK_STATE_QUEUED) {
    ready_.Remove(task.id());
    task.clear_wait_reason();
  }
  if (t->to == v1::TASK_STATE_QUEUED) Enqueue(task, jobs_.QueueOrder(task.id()));
  pending_.mutation.transitions.push_back(*std::move(t));
  MarkChanged(task);
  return true;
}

void Core::MarkChanged(const v1::Task& task) {
  if (pending_.changed_tasks.insert(task.id()).second) pending_.changed_order.push_back(task.id());
}

void Core::SendTo(const std::string& agent, v1::CoordinatorMessage msg) {
  pending_.to_agents.emplace_back(agent, std::move(msg));
}

void Core::SaveAgent(const Agent& agent) {
  pending_.mutation.agents.push_back(agent.info);
  wait_reasons_stale_ = true;  // what it is doing may be why a task waits
}

void Core::EndGroup() {
  if (schedule_due_) {
    // Still in the group: what it places is committed with the group's events.
    schedule_due_ = false;
    SchedulePass();
  }
  grouping_ = false;
  Flush();
}

void Core::WhenDurable(absl::AnyInvocable<void()> fn) {
  // Outside a group every change is flushed as it is made (Flush returns
  // early only inside one), so there is nothing to wait for.
  if (!grouping_) {
    fn();
    return;
  }
  pending_.after_commit.push_back(std::move(fn));
}

void Core::Flush() {
  if (grouping_) return;
  Pending p = std::move(pending_);
  pending_ = Pending();
  for (const std::string& id : p.changed_order) {
    if (const v1::Task* task = jobs_.FindTask(id)) {
      p.mutation.tasks.push_back(*task);
      // Recomputed by every scheduling pass: storing it would cost a write
      // each time it changes and show a stale one after a restart.
      p.mutation.tasks.back().clear_wait_reason();
    }
  }
  for (const std::string& id : p.changed_jobs) {
    v1::Job job = jobs_.Find(id)->job;
    job.clear_tasks();
    p.mutation.jobs.push_back(std::move(job));
  }
  // Log bytes first: the acks queued in to_agents let agents forget them, and
  // a result committed below must find its whole log stored. A store that
  // batches (PostgreSQL) writes the group's bytes here in one round trip.
  // A failure is handled like a failed commit: memory says more is stored
  // than is, so stop; the restart re-attaches the agents, which resend from
  // the stored end.
  if (absl::Status flushed = logs_->Flush(); !flushed.ok()) {
    StopOnStoreFailure("the log store's flush", flushed);
  }
  if (!p.mutation.empty()) {
    // Wall time, not clock_: this measures the disk, which a fake clock does not.
    const absl::Time start = absl::Now();
    absl::Status s = store_->Commit(p.mutation);
    metrics_.OnCommit(absl::Now() - start);
    // Memory already holds the change; carrying on would show agents and users
    // state that a restart forgets. Stop, and let the restart recover.
    if (!s.ok()) StopOnStoreFailure("the store's commit", s);
  }
  if (!p.mutation.deliveries.empty() && on_notifications_) on_notifications_();
  if (Log()->should_log(spdlog::level::debug)) TraceAssignments(p.to_agents);
  // A stream writes one message at a time, each after the last one's write
  // completed (a wake-up of a gRPC thread in between), so a turn's acks go
  // after everything else it sends: a result's ack and the assignment it
  // unblocked are usually for the same agent, and the spawn need not wait
  // for the ack's write (issue 19). Acks keep their order among themselves,
  // the rest theirs; nothing the agent does depends on an ack coming first.
  std::stable_partition(p.to_agents.begin(), p.to_agents.end(),
                        [](const auto& to) { return !to.second.has_ack(); });
  for (auto& [agent, msg] : p.to_agents) agents_.Send(agent, std::move(msg));
  // Watchers see state changes only once they are durable.
  for (const std::string& id : p.changed_order) watchers_.PublishTask(*jobs_.FindTask(id));
  for (const std::string& id : p.changed_jobs) {
    const v1::Job& job = jobs_.Find(id)->job;
    if (job.state() == v1::JOB_STATE_RUNNING) continue;
    watchers_.PublishJobEnd(job);
    // bench/watch_trace.py: its end is on disk and its watchers have it.
    Log()->debug("job={} end published at={}", job.id(), NowMicros());
    // Nothing of it runs, no watcher stays and the store has all of it: reads
    // go to the store from now on (no cache of recent ones: an indexed read
    // costs tens of microseconds, see BENCHMARKS.md, and memory stays bounded
    // by the unfinished work alone).
    for (const v1::Task& task : job.tasks()) {
      ++ended_tasks_[{TaskStateName(task.state()), metrics_.StageLabel(task)}];
    }
    jobs_.Remove(id);
  }
  for (absl::AnyInvocable<void()>& fn : p.after_commit) std::move(fn)();
}

void Core::TraceAssignments(
    const std::vector<std::pair<std::string, v1::CoordinatorMessage>>& to_agents) const {
  // The first point of an assignment's way to its spawn, on the clock the
  // agent's own points use (bench/latency_trace.py reads them): its commit is
  // on disk and the message leaves the loop now.
  const int64_t now = NowMicros();
  for (const auto& [agent, msg] : to_agents) {
    if (!msg.has_assignment()) continue;
    Log()->debug("task={} attempt={} assignment sent to {} at={}", msg.assignment().task_id(),
                 msg.assignment().attempt_id(), agent, now);
  }
}

void Core::Propagate(JobEntry& job, const v1::Task& task) {
  for (auto& [i, event] : PropagationEvents(job.job, job.index, job.dependants, task)) {
    Apply(*job.job.mutable_tasks(static_cast<int>(i)), event);
  }
  if (job.job.state() == v1::JOB_STATE_RUNNING && (task.state() == v1::TASK_STATE_FAILED ||
                                                    task.state() == v1::TASK_STATE_TIMED_OUT)) {
    NotifyFirstFailure(job.job);
  }
  MaybeFinishJob(job);
}

void Core::MaybeFinishJob(JobEntry& entry) {
  v1::Job& job = entry.job;
  if (job.state() != v1::JOB_STATE_RUNNING) return;
  bool cancelled = false, failed = false;
  for (const v1::Task& t : job.tasks()) {
    if (!IsTerminal(t.state())) return;
    cancelled = cancelled || t.state() == v1::TASK_STATE_CANCELLED;
    failed = failed || t.state() != v1::TASK_STATE_SUCCEEDED;
  }
  job.set_state(cancelled ? v1::JOB_STATE_CANCELLED
                : failed  ? v1::JOB_STATE_FAILED
                          : v1::JOB_STATE_SUCCEEDED);
  job.set_ended_us(ToMicros(clock_->Now()));
  // What retention counts against --retain-bytes: the files and the rows.
  uint64_t bytes = job.ByteSizeLong();
  for (const v1::Task& t : job.tasks()) bytes += logs_->TaskBytes(t.id());
  job.set_stored_bytes(bytes);
  // Nothing of the job runs any more, so nothing needs its secrets.
  if (jobs_.DropSecrets(entry)) pending_.mutation.drop_secrets.push_back(job.id());
  Log()->info("job={} {}", job.id(), v1::JobState_Name(job.state()));
  NotifyJobEnded(job);
  metrics_.OnJobEnded(job.state() == v1::JOB_STATE_SUCCEEDED ? "succeeded"
                      : job.state() == v1::JOB_STATE_FAILED  ? "failed"
                                                             : "cancelled");
  UpdateKeepImages();
  pending_.changed_jobs.insert(job.id());
}

void Core::UpdateKeepImages() {
  std::set<std::string> images = jobs_.ImagesInUse();
  if (images == keep_images_) return;
  keep_images_ = std::move(images);
  for (const auto& [name, agent] : agents_.agents()) {
    if (!agent.connected()) continue;
    SendTo(name, KeepImagesMessage(keep_images_));
  }
}

void Core::Tick() {
  const absl::Time now = clock_->Now();
  agents_.CloseUnregistered(now);
  for (Agent* agent : agents_.Silent(now)) {
    // Disconnected from this moment: nothing more is placed on it while its
    // stream winds down.
    DisconnectAgent(*agent, absl::UnavailableError(absl::StrCat(
                                "no heartbeat for ", absl::FormatDuration(now - agent->last_seen))));
  }
  for (Agent* agent : agents_.Lost(now)) {
    std::vector<std::string> held;
    for (const auto& [id, gpus] : agent->held) held.push_back(id);
    for (const std::string& id : held) {
      LoseAttempt(*jobs_.FindTask(id),
                  absl::StrCat("lost (away for ", absl::FormatDuration(now - agent->disconnected_at),
                               ")"));
    }
  }
  // A stalled watcher holds the farm until here at most.
  if (watchers_.Judge()) ReleaseAcks();
  Flush();
  Schedule();
}

void Core::Shutdown() {
  shutting_down_ = true;
  watchers_.FinishAll(absl::UnavailableError("coordinator shutting down"));
  agents_.CloseAll(absl::UnavailableError("coordinator shutting down"));
}

std::string Core::RenderMetrics() {
  CoreMetrics::Snapshot now;
  for (const auto& [name, agent] : agents_.agents()) {
    std::string state = agent.connected() ? (agent.info.draining() ? "draining" : "connected")
                                          : "disconnected";
    ++now.agents_by_state[state];
    if (agent.connected()) {
      now.gpus_total += agent.info.gpus();
      now.gpus_free += agent.info.free_gpus();
    }
  }
  // Every task the coordinator holds: a scan per scrape, cheap next to the
  // store (a thousand jobs of 15 tasks take well under a millisecond).
  for (const JobEntry* entry : jobs_.InOrder()) {
    for (const v1::Task& task : entry->job.tasks()) {
      ++now.tasks[{TaskStateName(task.state()), metrics_.StageLabel(task)}];
    }
  }
  for (const auto& [key, n] : ended_tasks_) now.tasks[key] += n;
  now.watchers = watchers_.size();
  return metrics_.Render(now);
}

}  // namespace musafarm::coordinator
