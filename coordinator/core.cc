#include "coordinator/core.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/stage_kind.h"
#include "common/task_state.h"
#include "coordinator/scheduler.h"
#include "pipeline/spec.h"

namespace musafarm::coordinator {
namespace {

constexpr size_t kMaxSpecBytes = 1 << 20;
constexpr size_t kMaxTasksPerJob = 10000;
constexpr size_t kMaxSecretBytes = 64 << 10;
// Below gRPC clients' default 4 MiB receive limit, with room for the other fields.
constexpr uint64_t kMaxLogRead = (4 << 20) - (64 << 10);

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("core");
  return log;
}

v1::CoordinatorMessage CancelMessage(const std::string& task_id, uint64_t attempt,
                                     const std::string& reason) {
  v1::CoordinatorMessage msg;
  msg.mutable_cancel()->set_task_id(task_id);
  msg.mutable_cancel()->set_attempt_id(attempt);
  msg.mutable_cancel()->set_reason(reason);
  return msg;
}

v1::CoordinatorMessage AckMessage(const std::string& task_id, uint64_t attempt, uint64_t offset,
                                  bool result_stored, bool resend = false) {
  v1::CoordinatorMessage msg;
  v1::Ack* ack = msg.mutable_ack();
  ack->set_task_id(task_id);
  ack->set_attempt_id(attempt);
  ack->set_log_offset(offset);
  ack->set_result_stored(result_stored);
  ack->set_resend(resend);
  return msg;
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
      agents_(TimingOf(options)),
      watchers_(logs) {}

absl::Status Core::Recover() {
  absl::StatusOr<std::vector<v1::Job>> jobs = store_->LoadJobs();
  if (!jobs.ok()) return jobs.status();
  absl::StatusOr<std::vector<v1::Agent>> agents = store_->LoadAgents();
  if (!agents.ok()) return agents.status();
  absl::StatusOr<std::map<std::string, std::map<std::string, std::string>>> secrets =
      store_->LoadSecrets();
  if (!secrets.ok()) return secrets.status();
  const absl::Time now = clock_->Now();
  for (v1::Agent& a : *agents) agents_.Restore(std::move(a), now);
  int resumed = 0;
  for (v1::Job& job : *jobs) {
    std::map<std::string, std::string> job_secrets;
    if (auto it = secrets->find(job.id()); it != secrets->end()) job_secrets = std::move(it->second);
    JobEntry& entry = jobs_.Add(std::move(job), std::move(job_secrets));
    for (size_t i = 0; i < static_cast<size_t>(entry.job.tasks_size()); ++i) {
      v1::Task& task = *entry.job.mutable_tasks(static_cast<int>(i));
      next_attempt_id_ = std::max(next_attempt_id_, task.attempt_id() + 1);
      if (task.attempt_id() != 0) task.set_log_size(logs_->Size(task.id(), task.attempt_id()));
      if (task.state() == v1::TASK_STATE_QUEUED) {
        ready_.Add(task.id(), {entry.seq, i}, RequirementOf(task.spec().run()));
      }
      if (IsActive(task.state())) {
        Agent& agent = agents_.RestoreHolder(task.agent(), now);
        agents_.Hold(agent, task.id(), {task.gpu_ids().begin(), task.gpu_ids().end()});
        ++resumed;
      }
    }
  }
  keep_images_ = jobs_.ImagesInUse();
  Log()->info("recovered {} jobs, {} agents, {} attempts awaiting their agents; next job {}",
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
  if (t->from == v1::TASK_STATE_QUEUED) ready_.Remove(task.id());
  if (t->to == v1::TASK_STATE_QUEUED) {
    ready_.Add(task.id(), jobs_.QueueOrder(task.id()), RequirementOf(task.spec().run()));
  }
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

void Core::SaveAgent(const Agent& agent) { pending_.mutation.agents.push_back(agent.info); }

void Core::Flush() {
  Pending p = std::move(pending_);
  pending_ = Pending();
  for (const std::string& id : p.changed_order) {
    if (const v1::Task* task = jobs_.FindTask(id)) p.mutation.tasks.push_back(*task);
  }
  for (const std::string& id : p.changed_jobs) {
    v1::Job job = jobs_.Find(id)->job;
    job.clear_tasks();
    p.mutation.jobs.push_back(std::move(job));
  }
  if (!p.mutation.empty()) {
    absl::Status s = store_->Commit(p.mutation);
    // Memory already holds the change; carrying on would show agents and users
    // state that a restart forgets. Stop, and let the restart recover.
    MF_CHECK(s.ok(), "store commit failed: {}", s.ToString());
  }
  for (auto& [agent, msg] : p.to_agents) agents_.Send(agent, std::move(msg));
  // Watchers see state changes only once they are durable.
  for (const std::string& id : p.changed_order) watchers_.PublishTask(*jobs_.FindTask(id));
  for (const std::string& id : p.changed_jobs) {
    const v1::Job& job = jobs_.Find(id)->job;
    if (job.state() != v1::JOB_STATE_RUNNING) watchers_.PublishJobEnd(job);
  }
}

// ---------------------------------------------------------------------------
// User API

absl::StatusOr<v1::Job> Core::Submit(const v1::SubmitRequest& request) {
  if (request.spec_yaml().size() > kMaxSpecBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        request.spec_file().empty() ? "<submitted>" : request.spec_file(), ":1:1: pipeline: is ",
        request.spec_yaml().size(), " bytes; the limit is ", kMaxSpecBytes));
  }
  const std::string job_id = absl::StrCat(jobs_.next_job_number());
  const std::string file = request.spec_file().empty() ? "<submitted>" : request.spec_file();
  pipeline::ExpandOptions expand;
  expand.name_override = request.name();
  expand.params.insert(request.params().begin(), request.params().end());
  for (const v1::AxisValues& axis : request.axes()) {
    expand.axes.emplace_back(axis.axis(),
                             std::vector<std::string>(axis.values().begin(), axis.values().end()));
  }
  for (const auto& [name, value] : request.secrets()) {
    // Names only from here on: an error message must never carry a value.
    if (value.size() > kMaxSecretBytes) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": --secret ", name, ": value is ",
                                                     value.size(), " bytes; the limit is ",
                                                     kMaxSecretBytes));
    }
    expand.secrets.push_back(name);
  }
  absl::StatusOr<v1::Job> parsed =
      pipeline::ParseAndExpand(request.spec_yaml(), file, job_id, expand);
  if (!parsed.ok()) return parsed.status();
  if (static_cast<size_t>(parsed->tasks_size()) > kMaxTasksPerJob) {
    return absl::InvalidArgumentError(
        absl::StrCat(request.spec_file().empty() ? "<submitted>" : request.spec_file(),
                     ":1:1: pipeline: expands to ", parsed->tasks_size(), " tasks; the limit is ",
                     kMaxTasksPerJob));
  }
  const int64_t now = ToMicros(clock_->Now());
  v1::Job job = *std::move(parsed);
  job.set_state(v1::JOB_STATE_RUNNING);
  job.set_created_us(now);

  Mutation m;
  for (v1::Task& task : *job.mutable_tasks()) {
    task.set_created_us(now);
    const v1::TaskState initial = InitialState(task);
    task.set_state(initial);
    m.transitions.push_back(
        Transition{task.id(), 0, v1::TASK_STATE_UNSPECIFIED, initial, now, "submitted"});
    m.tasks.push_back(task);
  }
  v1::Job header = job;
  header.clear_tasks();
  m.jobs.push_back(std::move(header));
  std::map<std::string, std::string> secrets(request.secrets().begin(), request.secrets().end());
  if (!secrets.empty()) m.job_secrets.emplace_back(job_id, secrets);
  // Committed before anything else sees the job: an acknowledged submission
  // survives any crash after this line.
  absl::Status committed = store_->Commit(m);
  if (!committed.ok()) {
    // The server's trouble, not the submitter's: never an input error code.
    Log()->error("job={} not stored: {}", job_id, committed.ToString());
    return absl::InternalError(
        absl::StrCat("coordinator could not store the job: ", committed.message()));
  }
  JobEntry& entry = jobs_.Add(job, std::move(secrets));
  for (size_t i = 0; i < static_cast<size_t>(job.tasks_size()); ++i) {
    const v1::Task& task = job.tasks(static_cast<int>(i));
    if (task.state() == v1::TASK_STATE_QUEUED) {
      ready_.Add(task.id(), {entry.seq, i}, RequirementOf(task.spec().run()));
    }
  }
  Log()->info("job={} submitted: '{}' from {}, {} tasks", job_id, job.name(), job.pipeline_file(),
              job.tasks_size());
  UpdateKeepImages();
  Flush();  // sends KeepImages even when nothing can be placed yet
  Schedule();
  return entry.job;
}

absl::StatusOr<v1::Job> Core::GetJob(const std::string& job_id) const {
  const JobEntry* job = jobs_.Find(job_id);
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", job_id, "'"));
  return job->job;
}

std::vector<v1::Job> Core::ListJobs(int limit) const { return jobs_.List(limit); }

void Core::CancelTask(JobEntry& job, v1::Task& task, v1::CancelResponse& response) {
  if (IsTerminal(task.state())) return;
  response.add_cancelled(task.id());
  if (!IsActive(task.state())) {
    Apply(task, {TaskEvent::kCancel, 0, nullptr, "", "cancelled by user"});
    Propagate(job, task);  // no-op for dependants already cancelled
    return;
  }
  if (task.cancel_requested_us() == 0) {
    task.set_cancel_requested_us(ToMicros(clock_->Now()));
    MarkChanged(task);
  }
  const Agent* agent = agents_.Find(task.agent());
  if (agent != nullptr && agent->connected()) {
    // The agent kills the process group and reports; the task ends then.
    SendTo(task.agent(), CancelMessage(task.id(), task.attempt_id(), "cancelled by user"));
    return;
  }
  // Nobody to ask: end it now. If the agent comes back holding the attempt, it
  // is told to stop it (the attempt is no longer current).
  ReleaseFromAgent(task);
  Apply(task, {TaskEvent::kCancel, 0, nullptr, "", "cancelled by user (agent disconnected)"});
  Propagate(job, task);
}

absl::StatusOr<v1::CancelResponse> Core::Cancel(const std::string& id) {
  v1::CancelResponse response;
  if (JobEntry* job = jobs_.Find(id)) {
    // Waiting tasks first, so they read "cancelled" rather than "skipped"
    // because an earlier one was cancelled.
    for (v1::Task& task : *job->job.mutable_tasks()) {
      if (!IsActive(task.state()) && !IsTerminal(task.state())) {
        response.add_cancelled(task.id());
        Apply(task, {TaskEvent::kCancel, 0, nullptr, "", "cancelled by user"});
      }
    }
    for (v1::Task& task : *job->job.mutable_tasks()) {
      if (IsActive(task.state())) CancelTask(*job, task, response);
    }
    MaybeFinishJob(*job);
  } else if (v1::Task* task = jobs_.FindTask(id)) {
    CancelTask(jobs_.JobOf(*task), *task, response);
  } else {
    return absl::NotFoundError(absl::StrCat("no job or task '", id, "'"));
  }
  Flush();
  Schedule();
  return response;
}

std::vector<v1::Agent> Core::ListAgents() const {
  std::vector<v1::Agent> out;
  for (const auto& [name, agent] : agents_.agents()) out.push_back(agent.Snapshot());
  return out;
}

absl::StatusOr<v1::Agent> Core::Drain(const std::string& name, bool undrain) {
  Agent* agent = agents_.Find(name);
  if (agent == nullptr) return absl::NotFoundError(absl::StrCat("no agent '", name, "'"));
  agent->info.set_draining(!undrain);
  if (undrain) dirty_agents_.insert(name);
  if (agent->connected()) {
    agent->info.set_state(undrain ? v1::AGENT_STATE_CONNECTED : v1::AGENT_STATE_DRAINING);
    v1::CoordinatorMessage msg;
    msg.mutable_drain()->set_draining(!undrain);
    SendTo(name, std::move(msg));
  }
  Log()->info("agent={} {}", name, undrain ? "undrained" : "draining");
  SaveAgent(*agent);
  Flush();
  Schedule();
  v1::Agent info = agent->info;
  info.clear_running_tasks();
  for (const auto& [task, gpus] : agent->held) info.add_running_tasks(task);
  return info;
}

absl::StatusOr<v1::GetArtifactResponse> Core::GetArtifact(const v1::GetArtifactRequest& request) {
  const v1::Task* task = jobs_.FindTask(request.task_id());
  if (task == nullptr)
    return absl::NotFoundError(absl::StrCat("no task '", request.task_id(), "'"));
  const v1::Artifact* artifact = nullptr;
  for (const v1::Artifact& a : task->artifacts()) {
    if (a.name() == request.name()) artifact = &a;
  }
  if (artifact == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("task '", request.task_id(), "' has no artifact '", request.name(), "'"));
  }
  const uint64_t limit =
      request.limit() == 0 ? kMaxLogRead : std::min<uint64_t>(request.limit(), kMaxLogRead);
  absl::StatusOr<std::string> data = logs_->ReadArtifact(task->id(), task->attempt_id(),
                                                         artifact->name(), request.offset(), limit);
  if (!data.ok()) return data.status();
  v1::GetArtifactResponse response;
  response.set_offset(request.offset());
  response.set_size(artifact->size());
  response.set_data(*std::move(data));
  return response;
}

absl::StatusOr<v1::GetLogResponse> Core::GetLog(const v1::GetLogRequest& request) {
  const v1::Task* task = jobs_.FindTask(request.task_id());
  if (task == nullptr)
    return absl::NotFoundError(absl::StrCat("no task '", request.task_id(), "'"));
  v1::GetLogResponse response;
  response.set_offset(request.offset());
  if (task->attempt_id() != 0) {
    const uint64_t limit =
        request.limit() == 0 ? kMaxLogRead : std::min<uint64_t>(request.limit(), kMaxLogRead);
    absl::StatusOr<std::string> data =
        logs_->Read(task->id(), task->attempt_id(), request.offset(), limit);
    if (!data.ok()) return data.status();
    response.set_data(*std::move(data));
    response.set_size(logs_->Size(task->id(), task->attempt_id()));
  }
  response.set_complete(IsTerminal(task->state()) &&
                        request.offset() + response.data().size() >= response.size());
  return response;
}

absl::Status Core::AddWatcher(WatchId id, const v1::WatchJobRequest& request,
                              std::shared_ptr<Watcher> watcher) {
  if (shutting_down_) return absl::UnavailableError("coordinator shutting down");
  const JobEntry* job = jobs_.Find(request.job_id());
  if (job == nullptr) return absl::NotFoundError(absl::StrCat("no job '", request.job_id(), "'"));
  if (!request.task_id().empty() && job->index.count(request.task_id()) == 0) {
    return absl::NotFoundError(
        absl::StrCat("job ", request.job_id(), " has no task '", request.task_id(), "'"));
  }
  watchers_.Add(id, request, job->job, std::move(watcher));
  return absl::OkStatus();
}

void Core::RemoveWatcher(WatchId id) { watchers_.Remove(id); }

// ---------------------------------------------------------------------------
// Agents

Core::ConnId Core::OnAgentConnected(std::shared_ptr<AgentConnection> conn) {
  return agents_.Connect(std::move(conn), clock_->Now());
}

void Core::OnAgentGone(ConnId conn) {
  Agent* agent = agents_.Gone(conn);
  if (agent == nullptr) return;  // never registered, or an older stream already replaced
  DisconnectAgent(*agent, absl::OkStatus());
  Flush();
}

void Core::DisconnectAgent(Agent& agent, const absl::Status& why) {
  const std::string& name = agent.info.name();
  agents_.Disconnect(agent, why, clock_->Now());
  if (agent.info.unavailable_reason() == "shutting down") {
    // An assignment that crossed the agent's shutdown was never started and
    // never will be: back to the queue at once, like a hand-back. What it
    // runs waits for the lost timeout as usual: a network blip during a long
    // drain must not cost the work.
    std::vector<std::string> held;
    for (const auto& [id, gpus] : agent.held) held.push_back(id);
    for (const std::string& id : held) {
      v1::Task& task = *jobs_.FindTask(id);
      if (task.state() != v1::TASK_STATE_ASSIGNED) continue;
      ReleaseFromAgent(task);
      logs_->CloseAttempt(task.id(), task.attempt_id());
      Apply(task, {TaskEvent::kHandBack, task.attempt_id(), nullptr, name,
                   absl::StrCat("agent ", name, " shut down before starting it")});
      if (IsTerminal(task.state())) Propagate(jobs_.JobOf(task), task);  // it was cancelled
    }
  }
  Log()->warn("agent={} disconnected{}{} holding {} attempts; re-queued after {} unless it returns",
              name, why.ok() ? "" : ": ", std::string(why.message()), agent.held.size(),
              absl::FormatDuration(agent.lose_at - agent.disconnected_at));
  SaveAgent(agent);
}

void Core::OnAgentMessage(ConnId conn, const v1::AgentMessage& msg) {
  if (msg.kind_case() == v1::AgentMessage::kRegister) {
    OnRegister(conn, msg.register_());
    return;
  }
  Agent* agent = agents_.AgentOn(conn);
  if (agent == nullptr) {
    // Gone already (no-op), or not registered yet.
    agents_.Close(conn,
                  absl::InvalidArgumentError("the first message on an agent stream must be 'register'"));
    return;
  }
  agent->last_seen = clock_->Now();
  switch (msg.kind_case()) {
    case v1::AgentMessage::kHeartbeat:
      agent->info.set_last_seen_us(ToMicros(agent->last_seen));
      OnHeartbeat(*agent, msg.heartbeat());
      break;
    case v1::AgentMessage::kHandBack:
      OnHandBack(*agent, msg.hand_back());
      break;
    case v1::AgentMessage::kStarted:
      OnStarted(*agent, msg.started());
      break;
    case v1::AgentMessage::kLog:
      OnLog(*agent, msg.log());
      break;
    case v1::AgentMessage::kResult:
      OnResult(*agent, msg.result());
      break;
    case v1::AgentMessage::kArtifact:
      OnArtifact(*agent, msg.artifact());
      break;
    default:
      agents_.Close(conn, absl::InvalidArgumentError("unknown agent message"));
      return;
  }
  Flush();
  Schedule();
}

void Core::OnRegister(ConnId conn, const v1::Register& reg) {
  absl::StatusOr<Agent*> registered = agents_.Register(conn, reg, clock_->Now());
  if (!registered.ok()) {
    if (absl::IsNotFound(registered.status())) return;  // the stream is already gone
    Log()->warn("refusing agent '{}' from {}: {}", reg.name(), agents_.PeerOf(conn),
                std::string(registered.status().message()));
    agents_.Close(conn, registered.status());
    return;
  }
  Agent& agent = **registered;
  v1::CoordinatorMessage hello;
  hello.mutable_registered()->set_heartbeat_interval_ms(
      absl::ToInt64Milliseconds(options_.heartbeat_interval));
  hello.mutable_registered()->set_draining(agent.info.draining());
  SendTo(reg.name(), std::move(hello));
  {
    v1::CoordinatorMessage keep;
    keep.mutable_keep_images()->mutable_images()->Assign(keep_images_.begin(), keep_images_.end());
    SendTo(reg.name(), std::move(keep));
  }

  // Reconcile what the agent holds with what we think it holds.
  std::set<std::string> kept;
  for (const v1::HeldAttempt& held : reg.held()) {
    v1::Task* task = jobs_.FindTask(held.task_id());
    if (task != nullptr && task->attempt_id() == held.attempt_id() && task->agent() == reg.name() &&
        IsActive(task->state())) {
      kept.insert(task->id());
      agents_.Hold(agent, task->id(), {task->gpu_ids().begin(), task->gpu_ids().end()});
      // Tells the agent where the stored log ends, so it resends exactly the rest.
      SendTo(reg.name(), AckMessage(task->id(), task->attempt_id(),
                                    logs_->Size(task->id(), task->attempt_id()), false,
                                    /*resend=*/true));
    } else {
      SendTo(reg.name(),
             CancelMessage(held.task_id(), held.attempt_id(), "attempt is no longer current"));
    }
  }
  std::vector<std::string> believed;
  for (const auto& [id, gpus] : agent.held) believed.push_back(id);
  for (const std::string& id : believed) {
    if (kept.count(id) == 0) LoseAttempt(*jobs_.FindTask(id), "agent came back without it");
  }
  dirty_agents_.insert(reg.name());  // new, back, or with other labels or slots
  Log()->info("agent={} registered from {}: slots={} labels=[{}] re-attached={}", reg.name(),
              agent.info.peer(), reg.slots(), absl::StrJoin(reg.labels(), ","), kept.size());
  SaveAgent(agent);
  Flush();
  Schedule();
}

v1::Task* Core::CurrentAttempt(Agent& agent, const std::string& task_id, uint64_t attempt_id) {
  v1::Task* task = jobs_.FindTask(task_id);
  if (task != nullptr && task->attempt_id() == attempt_id && IsActive(task->state()) &&
      agent.held.count(task->id()) != 0) {
    return task;
  }
  // Fencing: nothing of a superseded attempt is stored, and its agent stops it.
  SendTo(agent.info.name(), CancelMessage(task_id, attempt_id, "attempt is no longer current"));
  return nullptr;
}

void Core::OnHeartbeat(Agent& agent, const v1::Heartbeat& beat) {
  if (beat.free_disk_bytes() > 0) agent.info.set_free_disk_bytes(beat.free_disk_bytes());
  if (beat.unavailable_reason() == agent.info.unavailable_reason()) return;
  // Persisted: `musafarm agents` says why an agent takes no work.
  Log()->info("agent={} {}", agent.info.name(),
              beat.unavailable_reason().empty()
                  ? std::string("takes work again")
                  : absl::StrCat("takes no new work: ", beat.unavailable_reason()));
  agent.info.set_unavailable_reason(beat.unavailable_reason());
  if (beat.unavailable_reason().empty()) dirty_agents_.insert(agent.info.name());
  SaveAgent(agent);
}

void Core::OnHandBack(Agent& agent, const v1::HandBack& msg) {
  v1::Task* task = CurrentAttempt(agent, msg.task_id(), msg.attempt_id());
  if (task == nullptr) return;
  if (!Apply(*task, {TaskEvent::kHandBack, msg.attempt_id(), nullptr, agent.info.name(),
                     absl::StrCat("agent ", agent.info.name(), " handed it back: ", msg.reason())})) {
    return;
  }
  ReleaseFromAgent(*task);
  logs_->CloseAttempt(task->id(), task->attempt_id());
  if (IsTerminal(task->state())) Propagate(jobs_.JobOf(*task), *task);  // it was cancelled
}

void Core::OnStarted(Agent& agent, const v1::AttemptStarted& msg) {
  v1::Task* task = CurrentAttempt(agent, msg.task_id(), msg.attempt_id());
  if (task == nullptr) {
    return;
  }
  if (task->state() != v1::TASK_STATE_ASSIGNED) return;  // a resend
  Apply(*task, {TaskEvent::kStart, msg.attempt_id(), nullptr, "", ""});
}

void Core::OnLog(Agent& agent, const v1::LogChunk& chunk) {
  v1::Task* task = CurrentAttempt(agent, chunk.task_id(), chunk.attempt_id());
  if (task == nullptr) return;
  const uint64_t before = logs_->Size(task->id(), task->attempt_id());
  absl::StatusOr<uint64_t> size =
      logs_->Append(task->id(), task->attempt_id(), chunk.offset(), chunk.data());
  if (!size.ok()) {
    if (absl::IsFailedPrecondition(size.status())) {
      // A gap: ask for a resend from where the stored log ends.
      SendTo(agent.info.name(),
             AckMessage(task->id(), task->attempt_id(), before, false, /*resend=*/true));
    } else {
      Log()->error("task={} attempt={}: {}", task->id(), task->attempt_id(),
                   size.status().ToString());
    }
    return;
  }
  task->set_log_size(*size);
  SendTo(agent.info.name(), AckMessage(task->id(), task->attempt_id(), *size, false));
  if (*size > before) {
    const size_t skip = static_cast<size_t>(before - chunk.offset());
    watchers_.PublishLog(*task, task->attempt_id(), before, chunk.data().substr(skip));
  }
}

void Core::OnArtifact(Agent& agent, const v1::ArtifactChunk& chunk) {
  v1::Task* task = CurrentAttempt(agent, chunk.task_id(), chunk.attempt_id());
  if (task == nullptr) {
    return;
  }
  absl::StatusOr<uint64_t> size = logs_->AppendArtifact(task->id(), task->attempt_id(),
                                                        chunk.name(), chunk.offset(), chunk.data());
  if (!size.ok()) {
    // A gap or a bad name: the result check below asks for a resend or fails it.
    Log()->warn("task={} attempt={} artifact '{}': {}", task->id(), task->attempt_id(),
                chunk.name(), size.status().ToString());
  }
}

void Core::OnResult(Agent& agent, const v1::AttemptResult& result) {
  v1::Task* task = CurrentAttempt(agent, result.task_id(), result.attempt_id());
  if (task == nullptr) {
    // A late result from a superseded attempt: refused, and the agent drops it.
    Log()->warn("agent={} task={} attempt={}: refusing result of a superseded attempt",
                agent.info.name(), result.task_id(), result.attempt_id());
    return;
  }
  const uint64_t stored = logs_->Size(task->id(), task->attempt_id());
  bool artifacts_complete = true;
  for (const v1::Artifact& artifact : result.artifacts()) {
    if (!LogStore::ValidArtifactName(artifact.name())) {
      artifacts_complete = false;  // never storable: refuse the whole result
      break;
    }
    artifacts_complete =
        artifacts_complete &&
        logs_->ArtifactSize(task->id(), task->attempt_id(), artifact.name()) >= artifact.size();
  }
  if (stored < result.log_size() || !artifacts_complete) {
    // Not every byte is here yet: have the agent resend them, then the result.
    SendTo(agent.info.name(),
           AckMessage(task->id(), task->attempt_id(), stored, false, /*resend=*/true));
    return;
  }
  if (!Apply(*task, {TaskEvent::kResult, result.attempt_id(), &result, "", ""})) return;
  logs_->CloseAttempt(task->id(), task->attempt_id());
  ReleaseFromAgent(*task);
  task->set_exit_code(result.exit_code());
  task->set_log_size(stored);
  *task->mutable_artifacts() = result.artifacts();
  if (result.has_tests()) {
    *task->mutable_tests() = result.tests();
  } else {
    task->clear_tests();
  }
  if (IsTerminal(task->state())) Propagate(jobs_.JobOf(*task), *task);
  SendTo(agent.info.name(), AckMessage(task->id(), result.attempt_id(), stored, true));
}

void Core::ReleaseFromAgent(const v1::Task& task) {
  // A slot, and maybe GPUs, are free: placement may find room there now.
  if (agents_.Release(task.agent(), task.id())) dirty_agents_.insert(task.agent());
}

void Core::LoseAttempt(v1::Task& task, const std::string& why) {
  ReleaseFromAgent(task);
  logs_->CloseAttempt(task.id(), task.attempt_id());
  Apply(task, {TaskEvent::kLose, task.attempt_id(), nullptr, task.agent(), why});
  if (IsTerminal(task.state())) Propagate(jobs_.JobOf(task), task);
}

void Core::Propagate(JobEntry& job, const v1::Task& task) {
  for (auto& [i, event] : PropagationEvents(job.job, job.index, job.dependants, task)) {
    Apply(*job.job.mutable_tasks(static_cast<int>(i)), event);
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
  // Nothing of the job runs any more, so nothing needs its secrets.
  if (jobs_.DropSecrets(entry)) pending_.mutation.drop_secrets.push_back(job.id());
  Log()->info("job={} {}", job.id(), v1::JobState_Name(job.state()));
  UpdateKeepImages();
  pending_.changed_jobs.insert(job.id());
}

void Core::UpdateKeepImages() {
  std::set<std::string> images = jobs_.ImagesInUse();
  if (images == keep_images_) return;
  keep_images_ = std::move(images);
  for (const auto& [name, agent] : agents_.agents()) {
    if (!agent.connected()) continue;
    v1::CoordinatorMessage keep;
    keep.mutable_keep_images()->mutable_images()->Assign(keep_images_.begin(), keep_images_.end());
    SendTo(name, std::move(keep));
  }
}

void Core::Schedule() {
  if (shutting_down_) return;  // nothing new goes to streams that are closing
  if (!ready_.HasDirty() && dirty_agents_.empty()) return;  // nothing placement reads changed
  std::set<Requirement> candidates = ready_.TakeDirty();
  std::set<std::string> changed_agents;
  changed_agents.swap(dirty_agents_);
  if (ready_.size() == 0) return;
  ++stats_.passes;

  std::vector<Agent*> agents;
  std::vector<std::vector<std::string>> agent_labels, agent_kinds;
  std::vector<AgentSlots> slots;
  std::vector<std::set<int32_t>> used_gpus;
  int total_free = 0;
  for (auto& [name, agent] : agents_.agents()) {
    agents.push_back(&agent);
    agent_labels.emplace_back(agent.info.labels().begin(), agent.info.labels().end());
    agent_kinds.emplace_back(agent.info.executors().begin(), agent.info.executors().end());
    used_gpus.push_back(agent.used_gpus());
  }
  for (size_t i = 0; i < agents.size(); ++i) {
    const Agent& a = *agents[i];
    slots.push_back(AgentSlots{&agent_labels[i], a.free_slots(), a.accepting(), &agent_kinds[i]});
    slots.back().free_gpus = std::max(0, a.info.gpus() - static_cast<int>(used_gpus[i].size()));
    if (slots.back().accepting) total_free += slots.back().free_slots;
  }
  auto class_view = [](const Requirement& r) {
    ReadyTask view;
    view.labels = &r.labels;
    view.kind = r.kind;
    view.gpus = r.gpus;
    return view;
  };
  // Classes with no new task are worth a look only if an agent that changed
  // can take one of them now.
  for (const auto& [req, cls] : ready_.classes()) {
    if (candidates.count(req) != 0) continue;
    const ReadyTask view = class_view(req);
    for (size_t a = 0; a < agents.size(); ++a) {
      if (changed_agents.count(agents[a]->info.name()) != 0 && Fits(slots[a], view)) {
        candidates.insert(req);
        break;
      }
    }
  }

  // Oldest first across the candidate classes (a merge of their queues); a
  // class leaves the merge at its first task that fits nowhere.
  bool placed_any = false;
  while (total_free > 0 && !candidates.empty()) {
    const ReadyQueue::Class* next = nullptr;
    for (auto it = candidates.begin(); it != candidates.end();) {
      auto c = ready_.classes().find(*it);
      if (c == ready_.classes().end()) {
        it = candidates.erase(it);  // emptied
        continue;
      }
      if (next == nullptr || c->second.tasks.begin()->first < next->tasks.begin()->first) {
        next = &c->second;
      }
      ++it;
    }
    if (next == nullptr) break;
    ++stats_.tasks_examined;
    v1::Task& task = *jobs_.FindTask(next->tasks.begin()->second);
    ReadyTask view = class_view(next->requirement);
    // Cache locality: the agents that ran this task's dependencies hold their
    // images and build cache.
    for (const std::string& need : task.spec().needs()) {
      const v1::Task* dep = jobs_.FindTask(need);
      if (dep == nullptr || dep->agent().empty()) continue;
      for (size_t a = 0; a < agents.size(); ++a) {
        if (agents[a]->info.name() == dep->agent()) view.warm_agents.push_back(a);
      }
    }
    const size_t a = BestAgent(view, slots);
    if (a == agents.size()) {
      candidates.erase(next->requirement);
      continue;
    }
    Agent& agent = *agents[a];
    if (!Apply(task, {TaskEvent::kAssign, next_attempt_id_++, nullptr, agent.info.name(), ""})) {
      candidates.erase(next->requirement);  // cannot happen; never loop on it
      continue;
    }
    placed_any = true;
    --slots[a].free_slots;
    slots[a].free_gpus -= view.gpus;
    --total_free;
    // The lowest free GPU numbers; BestAgent checked there are enough.
    for (int32_t g = 0; task.gpu_ids_size() < task.spec().run().gpus() && g < agent.info.gpus();
         ++g) {
      if (used_gpus[a].insert(g).second) task.add_gpu_ids(g);
    }
    agents_.Hold(agent, task.id(), {task.gpu_ids().begin(), task.gpu_ids().end()});
    v1::CoordinatorMessage msg;
    v1::Assignment* as = msg.mutable_assignment();
    as->set_task_id(task.id());
    as->set_attempt_id(task.attempt_id());
    as->set_job_id(task.job_id());
    as->set_display_name(task.spec().display_name());
    *as->mutable_run() = task.spec().run();
    *as->mutable_gpu_ids() = task.gpu_ids();
    const JobEntry& job = jobs_.JobOf(task);
    for (const std::string& name : task.spec().run().secrets()) {
      auto it = job.secrets.find(name);
      if (it != job.secrets.end()) (*as->mutable_secrets())[name] = it->second;
    }
    // Persisted before it is sent (Flush): if we crash in between, the agent
    // never heard of it and re-registration re-queues it.
    SendTo(agent.info.name(), std::move(msg));
  }
  if (placed_any) Flush();
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
  Flush();
  Schedule();
}

void Core::Shutdown() {
  shutting_down_ = true;
  watchers_.FinishAll(absl::UnavailableError("coordinator shutting down"));
  agents_.CloseAll(absl::UnavailableError("coordinator shutting down"));
}

}  // namespace musafarm::coordinator
