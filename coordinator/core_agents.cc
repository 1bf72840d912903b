// Core, part 3 of 4: the agent protocol (AgentEventSink): streams,
// registration and reconciliation, heartbeats, attempt reports (started, log,
// artifact, result, hand-back) with fencing, lost attempts. The orchestration
// is in core.cc.
#include "coordinator/core.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/logging.h"
#include "common/peer_compat.h"
#include "common/protocol_version.h"
#include "common/stage_kind.h"
#include "common/task_state.h"
#include "coordinator/agent_messages.h"
#include "coordinator/host_health.h"

namespace musafarm::coordinator {
namespace {
std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("core");
  return log;
}
}  // namespace

Core::ConnId Core::OnAgentConnected(std::shared_ptr<AgentConnection> conn) {
  return agents_.Connect(std::move(conn), clock_->Now());
}

void Core::OnAgentGone(ConnId conn) {
  Agent* agent = agents_.Gone(conn);
  if (agent == nullptr) return;  // never registered, or an older stream already replaced
  DisconnectAgent(*agent, absl::OkStatus());
  Flush();
  Schedule();  // hand-backs to place, and wait reasons that named it
}

void Core::DisconnectAgent(Agent& agent, const absl::Status& why) {
  const std::string& name = agent.info.name();
  agents_.Disconnect(agent, why, clock_->Now());
  if (agent.info.shutting_down()) {
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
  if (absl::Status protocol = CheckAgentProtocol(reg.protocol_version()); !protocol.ok()) {
    // Before anything of it is believed: an agent of another protocol may
    // mean something else by any field.
    Log()->warn("refusing agent '{}' from {}: {}", reg.name(), agents_.PeerOf(conn),
                std::string(protocol.message()));
    agents_.Close(conn, protocol);
    return;
  }
  if (enrollment_ != nullptr && enrollment_->IsRevoked(reg.name())) {
    const absl::Status why = enrollment_->RevokedError(reg.name());
    Log()->warn("refusing agent '{}' from {}: {}", reg.name(), agents_.PeerOf(conn),
                std::string(why.message()));
    agents_.Close(conn, why);
    return;
  }
  absl::StatusOr<Agent*> registered = agents_.Register(conn, reg, clock_->Now());
  if (!registered.ok()) {
    if (absl::IsNotFound(registered.status())) return;  // the stream is already gone
    Log()->warn("refusing agent '{}' from {}: {}", reg.name(), agents_.PeerOf(conn),
                std::string(registered.status().message()));
    agents_.Close(conn, registered.status());
    return;
  }
  Agent& agent = **registered;
  const HeartbeatPace::Decision pace = pace_.OnRegister(agents_.connected());
  agents_.SetHeartbeatInterval(agent, pace.interval, pace_.SilenceAllowed(pace.interval));
  if (pace.tell_everyone) TellPace(pace.interval);
  v1::CoordinatorMessage hello;
  hello.mutable_registered()->set_heartbeat_interval_ms(absl::ToInt64Milliseconds(pace.interval));
  hello.mutable_registered()->set_draining(agent.info.draining());
  hello.mutable_registered()->set_protocol_version(kProtocolVersion);
  SendTo(reg.name(), std::move(hello));
  SendTo(reg.name(), KeepImagesMessage(keep_images_));

  // Reconcile what the agent holds with what we think it holds.
  std::set<std::string> kept;
  for (const v1::HeldAttempt& held : reg.held()) {
    v1::Task* task = jobs_.FindTask(held.task_id());
    if (task != nullptr && task->attempt_id() == held.attempt_id() && task->agent() == reg.name() &&
        IsActive(task->state())) {
      kept.insert(task->id());
      held_acks_.erase(task->id());  // the resend ack below covers it
      agents_.Hold(agent, task->id(), {task->gpu_ids().begin(), task->gpu_ids().end()});
      // Tells the agent where the stored log ends, so it resends exactly the
      // rest. A truncated log takes nothing more: everything the agent holds
      // counts as taken (it clamps the offset to what it has).
      const uint64_t stored = task->log_truncated()
                                  ? std::numeric_limits<uint64_t>::max()
                                  : logs_->Size(task->id(), task->attempt_id());
      SendTo(reg.name(),
             AckMessage(task->id(), task->attempt_id(), stored, false, /*resend=*/true));
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
  ApplyPolicy(agent);                // its labels may have changed
  dirty_agents_.insert(reg.name());  // new, back, or with other labels or slots
  Log()->info("agent={} registered from {}: slots={} labels=[{}] re-attached={}", reg.name(),
              agent.info.peer(), reg.slots(), absl::StrJoin(reg.labels(), ","), kept.size());
  SaveAgent(agent);
  Flush();
  Schedule();
}

void Core::TellPace(absl::Duration interval) {
  // Each agent may be silent longer from now on: its next heartbeat may still
  // come at its old interval, the ones after at the new one.
  int told = 0;
  for (auto& [name, agent] : agents_.agents()) {
    if (!agent.connected() || agent.heartbeat_interval >= interval) continue;
    agents_.SetHeartbeatInterval(agent, interval, pace_.SilenceAllowed(interval));
    SendTo(name, PaceMessage(interval));
    ++told;
  }
  Log()->info("{} agents connected: heartbeat every {} (deadline {}); told {} agents",
              agents_.connected(), absl::FormatDuration(interval),
              absl::FormatDuration(pace_.SilenceAllowed(interval)), told);
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
  const bool shutting_down = ShuttingDown(beat);  // the text, for an old agent
  const HostHealthChange health = ApplyHostHealth(beat, &agent.info);
  if (health.changed) {
    std::vector<std::string> kinds;
    for (int k : agent.info.unavailable_kinds()) {
      kinds.push_back(StageKindName(static_cast<v1::StageKind>(k)));
    }
    Log()->info("agent={} host health: unavailable kinds [{}]{}; fenced GPUs [{}]{}",
                agent.info.name(), absl::StrJoin(kinds, ","),
                agent.info.kinds_unavailable_reason().empty()
                    ? ""
                    : absl::StrCat(" (", agent.info.kinds_unavailable_reason(), ")"),
                absl::StrJoin(agent.info.fenced_gpus(), ","),
                agent.info.gpu_fence_reason().empty()
                    ? ""
                    : absl::StrCat(" (", agent.info.gpu_fence_reason(), ")"));
    if (health.freed) dirty_agents_.insert(agent.info.name());
  }
  if (beat.unavailable_reason() == agent.info.unavailable_reason() &&
      shutting_down == agent.info.shutting_down()) {
    if (health.changed) SaveAgent(agent);
    return;
  }
  agent.info.set_shutting_down(shutting_down);
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
  Apply(*task, {TaskEvent::kStart, msg.attempt_id(), nullptr, "", "",
                StartOnCoordinatorClock(msg.started_us(), msg.sent_us(),
                                        ToMicros(clock_->Now()), task->created_us())});
  Log()->debug("task={} attempt={} started on the loop at={} (the agent's at={})", task->id(),
               task->attempt_id(), task->started_us(), msg.started_us());
}

namespace {

// The one line a log gets at --max-log-bytes, on a line of its own.
std::string LogTruncatedMarker(uint64_t max_bytes) {
  return absl::StrCat("\n[musafarm] log truncated at ", max_bytes,
                      " bytes (the coordinator's --max-log-bytes); further output dropped\n");
}

}  // namespace

void Core::OnLog(Agent& agent, const v1::LogChunk& chunk) {
  v1::Task* task = CurrentAttempt(agent, chunk.task_id(), chunk.attempt_id());
  if (task == nullptr) return;
  // Past --max-log-bytes: the log keeps its first max bytes and one marker
  // line; later bytes are acknowledged (the agent may forget them) and
  // dropped. Offsets stay the agent's, so resends and acks work unchanged.
  const uint64_t max = options_.max_log_bytes;
  const uint64_t chunk_end = chunk.offset() + chunk.data().size();
  if (task->log_truncated()) {
    held_acks_.erase(task->id());
    SendTo(agent.info.name(), AckMessage(task->id(), task->attempt_id(), chunk_end, false));
    return;
  }
  const uint64_t before = logs_->Size(task->id(), task->attempt_id());
  const bool over = chunk_end > max && chunk.offset() <= before;
  absl::string_view data = chunk.data();
  if (over) data = data.substr(0, chunk.offset() < max ? max - chunk.offset() : 0);
  absl::StatusOr<uint64_t> size = logs_->Append(task->id(), task->attempt_id(), chunk.offset(), data);
  // (At or past max: a log stored under a larger --max-log-bytes before a
  // restart ends where it is.)
  if (size.ok() && over && *size >= max) {
    const uint64_t end = *size;
    const std::string marker = LogTruncatedMarker(max);
    size = logs_->Append(task->id(), task->attempt_id(), end, marker);
    if (size.ok()) {
      task->set_log_truncated(true);
      task->set_log_size(*size);
      MarkChanged(*task);
      Log()->warn("task={} attempt={}: log truncated at {} bytes (--max-log-bytes)", task->id(),
                  task->attempt_id(), max);
      if (end > before) {
        watchers_.PublishLog(*task, task->attempt_id(), before,
                             std::string(data.substr(static_cast<size_t>(before - chunk.offset()))));
      }
      watchers_.PublishLog(*task, task->attempt_id(), end, marker);
      held_acks_.erase(task->id());
      SendTo(agent.info.name(), AckMessage(task->id(), task->attempt_id(), chunk_end, false));
      return;
    }
  }
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
  if (*size > before) {
    metrics_.OnLogBytes(*size - before);
    const size_t skip = static_cast<size_t>(before - chunk.offset());
    watchers_.PublishLog(*task, task->attempt_id(), before,
                         absl::string_view(chunk.data()).substr(skip));
  }
  // After the publish: what it queued for the watchers decides whether they
  // hold the ack.
  AckLog(agent.info.name(), *task, *size);
}

void Core::AckLog(const std::string& agent, const v1::Task& task, uint64_t offset) {
  if (watchers_.HoldsAcks(task)) {
    held_acks_[task.id()] = HeldAck{agent, task.attempt_id(), offset};
    return;
  }
  held_acks_.erase(task.id());
  SendTo(agent, AckMessage(task.id(), task.attempt_id(), offset, false));
}

void Core::ReleaseAcks() {
  for (auto it = held_acks_.begin(); it != held_acks_.end();) {
    const v1::Task* task = jobs_.FindTask(it->first);
    const bool current = task != nullptr && task->attempt_id() == it->second.attempt &&
                         task->agent() == it->second.agent && IsActive(task->state());
    if (current && watchers_.HoldsAcks(*task)) {
      ++it;
      continue;
    }
    if (current) {
      SendTo(it->second.agent, AckMessage(task->id(), task->attempt_id(), it->second.offset, false));
    }
    it = held_acks_.erase(it);
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
  held_acks_.erase(task->id());  // every answer below acks up to what is stored
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
  // A truncated log is complete at its marker: the rest was dropped on purpose.
  if ((!task->log_truncated() && stored < result.log_size()) || !artifacts_complete) {
    // Not every byte is here yet: have the agent resend them, then the result.
    SendTo(agent.info.name(),
           AckMessage(task->id(), task->attempt_id(), stored, false, /*resend=*/true));
    return;
  }
  if (!Apply(*task, {TaskEvent::kResult, result.attempt_id(), &result, "", "",
                     StartOnCoordinatorClock(result.started_us(), result.sent_us(),
                                             ToMicros(clock_->Now()), task->created_us())})) {
    return;
  }
  // bench/watch_trace.py.
  Log()->debug("task={} attempt={} result on the loop at={}", task->id(), task->attempt_id(),
               NowMicros());
  if (result.log_dropped_bytes() > 0) {
    Log()->info("task={} attempt={}: the agent dropped {} bytes of output past --max-log-bytes",
                task->id(), task->attempt_id(), result.log_dropped_bytes());
  }
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

}  // namespace musafarm::coordinator
