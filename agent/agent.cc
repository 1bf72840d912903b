// Agent, main part: the session with the coordinator, attempts (start,
// output, exit, results, artifacts, acks, cancels) and the disk threshold.
// Recovery is in agent_recovery.cc, shutdown in agent_shutdown.cc.
#include "agent/agent.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "agent/agent_internal.h"
#include "agent/executor/task_env.h"
#include "agent/host/disk.h"
#include "agent/suite_verdict.h"
#include "agent/test_reports.h"
#include "common/clock.h"
#include "common/file_modes.h"
#include "common/format_bytes.h"
#include "common/labels.h"
#include "common/limits.h"
#include "common/logging.h"
#include "common/peer_compat.h"
#include "common/protocol_version.h"
#include "common/stage_kind.h"
#include "common/utf8.h"
#include "common/version.h"

namespace musafarm::agent {

std::shared_ptr<spdlog::logger> internal::Log() {
  static auto log = GetLogger("agent");
  return log;
}

std::string internal::AttemptFileName(const std::string& task, uint64_t attempt) {
  return absl::StrCat(absl::StrReplaceAll(task, {{"/", "_"}}), "-", attempt);
}

namespace {

using internal::AttemptFileName;
using internal::Log;

constexpr size_t kMaxChunk = 64 * 1024;
// Log chunks take what the spool holds unsent, up to the most a coordinator
// accepts: output that piles up while the stream is busy goes in few large
// messages (one Append, one Ack, one watcher message each on the coordinator).
constexpr size_t kMaxLogChunk = limits::kMaxChunkBytes;
// Log bytes sent but not yet acknowledged: what the stream's outbox may hold,
// so that a slow coordinator does not pull the spool into memory. The agent's
// in all, like SendLead::kMax: each attempt with log bytes on their way has an
// even share of both (Agent::Sharing), and at least kMinShare, so that the
// bytes queued ahead of a watcher, and so a line's delay, do not grow with the
// number of tasks printing at once (issue 19: 4 tasks, 2 per agent, had 4x the
// one task's queue).
constexpr uint64_t kMinShare = 256 << 10;

uint64_t ShareOf(uint64_t whole, size_t sharing) {
  return std::max<uint64_t>(kMinShare, whole / std::max<size_t>(1, sharing));
}

}  // namespace

Agent::Agent(AgentOptions options, CoordinatorLink* link, Executor* exec, Executor* docker)
    : options_(std::move(options)),
      link_(link),
      exec_executor_(exec),
      docker_executor_(docker),
      budget_(options_.max_spool_bytes),
      backoff_(options_.reconnect_initial, options_.reconnect_max),
      work_dirs_(options_.work_dir + "/tasks", static_cast<size_t>(std::max(options_.slots, 1))) {}

Agent::~Agent() {
  Stop();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

std::string Agent::Key(const std::string& task, uint64_t attempt) {
  return absl::StrCat(task, "#", attempt);
}

std::string Agent::StatePath() const {
  return absl::StrCat(options_.work_dir, "/", kAgentStateFile);
}

absl::Status Agent::Start() {
  if (options_.name.empty()) return absl::InvalidArgumentError("agent name is empty");
  if (options_.slots < 1) return absl::InvalidArgumentError("--slots must be at least 1");
  for (const std::string& label : options_.labels) {
    if (absl::Status s = ValidateLabel(label); !s.ok()) return s;
  }
  // 0700: the work dir holds the spooled (redacted) output, the state file
  // and every task's files. The agent keeps the process umask as it is
  // (tasks inherit it, and a docker build copies its context's file modes
  // into the image), so this mode is what keeps other users out.
  for (const char* sub : {"", "/tasks", "/spool"}) {
    if (absl::Status s = MakePrivateDir(options_.work_dir + sub); !s.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot create work dir '", options_.work_dir, "': ", s.message()));
    }
  }
  if (absl::Status s = LockWorkDir(); !s.ok()) return s;
  state_writer_ = std::make_unique<StateWriter>(options_.work_dir);
  if (options_.before_durable_state_write) {
    state_writer_->SetBeforeDurableHook(options_.before_durable_state_write);
  }
  RemoveLeftovers();
  MeasureDisk();
  // A group is what the loop runs between two waits (PostGrouped): the state
  // changes of all its closures are written once at its end.
  loop_.SetGroupHooks([this] { in_turn_ = true; },
                      [this] {
                        in_turn_ = false;
                        FlushState();
                      });
  loop_.Start();
  started_ = true;
  loop_.Post([this] { Connect(); });
  return absl::OkStatus();
}

void Agent::MeasureDisk() {
  absl::StatusOr<uint64_t> free =
      options_.free_disk ? options_.free_disk(options_.work_dir) : FreeDiskBytes(options_.work_dir);
  if (!free.ok()) {
    Log()->debug("cannot measure free disk: {}", std::string(free.status().message()));
    return;
  }
  free_disk_ = *free;
  std::string reason = LowDiskReason(*free, options_.min_free_disk, options_.work_dir);
  if (reason != disk_reason_) {
    if (reason.empty()) {
      Log()->info("disk space is back: {} free in {}; taking work again", FormatBytes(*free),
                  options_.work_dir);
    } else {
      Log()->warn("{}; taking no new work", reason);
    }
    disk_reason_ = std::move(reason);
  }
  if (!disk_reason_.empty() && options_.on_low_disk) {
    std::set<std::string> keep = keep_images_;
    for (const auto& [key, a] : attempts_) {
      for (std::string& image : StageImages(a.assignment.run())) keep.insert(std::move(image));
    }
    options_.on_low_disk(std::move(keep));
  }
}

std::string Agent::UnavailableReason() const {
  return shutting_down_ ? kShuttingDownText : disk_reason_;
}

std::string Agent::DockerUnreachable() const {
  if (docker_executor_ == nullptr || !options_.docker_unreachable) return "";
  return options_.docker_unreachable();
}

template <typename M>
void Agent::SetHostHealth(M* m) const {
  m->clear_unavailable_kinds();
  m->clear_kinds_unavailable_reason();
  if (std::string docker = DockerUnreachable(); !docker.empty()) {
    for (v1::StageKind k : {v1::STAGE_KIND_DOCKER_BUILD, v1::STAGE_KIND_DOCKER_RUN,
                            v1::STAGE_KIND_DOCKER_PUSH}) {
      m->add_unavailable_kinds(k);
    }
    m->set_kinds_unavailable_reason(docker);
  }
  m->clear_fenced_gpus();
  m->clear_gpu_fence_reason();
  if (options_.fenced_gpus) {
    std::vector<std::string> why;
    for (const auto& [gpu, reason] : options_.fenced_gpus()) {
      m->add_fenced_gpus(gpu);
      why.push_back(reason);
    }
    m->set_gpu_fence_reason(absl::StrJoin(why, "; "));
  }
}

void Agent::HostHealthChanged() {
  if (!started_) return;
  loop_.Post([this] {
    if (registered_ && !closing_) SendHeartbeat();
  });
}

void Agent::Connect() {
  if (closing_) return;
  const uint64_t gen = ++generation_;
  registered_ = false;
  session_target_ = link_->Target();
  const bool inline_ok = link_->OnMessageMaySend();
  session_ = link_->Open(
      // Grouped: a turn's assignments share one state write (FlushState).
      [this, gen, inline_ok](v1::CoordinatorMessage msg) {
        if (msg.has_assignment() && Log()->should_log(spdlog::level::debug)) {
          Log()->debug("task={} attempt={} assignment read at={}", msg.assignment().task_id(),
                       msg.assignment().attempt_id(), NowMicros());
        }
        // An exec assignment that finds the loop idle is started here, on
        // the link's thread, as a turn of the loop of its own: waking the
        // loop's thread cost a wake-up and, on a busy host, a wait for a
        // core before the spawn (issue 19). Only exec: a docker attempt's
        // state is fsync'd before it starts, which must not hold up the
        // link's thread.
        const bool here = inline_ok && msg.has_assignment() &&
                          msg.assignment().run().kind_case() == v1::StageSpec::kExec;
        auto handle = [this, gen, msg = std::move(msg)] { OnMessage(gen, msg); };
        if (here) {
          loop_.RunHereOrPostGrouped(std::move(handle));
        } else {
          loop_.PostGrouped(std::move(handle));
        }
      },
      [this, gen](absl::Status status) {
        loop_.PostGrouped([this, gen, status] { OnSessionEnd(gen, status); });
      });
  v1::AgentMessage msg;
  v1::Register* reg = msg.mutable_register_();
  reg->set_name(options_.name);
  for (const std::string& l : options_.labels) reg->add_labels(l);
  reg->set_slots(options_.slots);
  reg->set_version(musafarm::ProjectVersion());
  reg->set_protocol_version(kProtocolVersion);
  reg->set_instance_secret(instance_secret_);
  MeasureDisk();
  reg->mutable_capabilities()->set_free_disk_bytes(static_cast<int64_t>(free_disk_));
  reg->mutable_capabilities()->set_unavailable_reason(UnavailableReason());
  reg->mutable_capabilities()->set_shutting_down(shutting_down_);
  reg->mutable_capabilities()->set_gpus(options_.gpus.count);
  reg->mutable_capabilities()->set_gpu_vendor(options_.gpus.vendor);
  std::vector<v1::StageKind> kinds = {v1::STAGE_KIND_EXEC};
  if (docker_executor_ != nullptr) {
    kinds.insert(kinds.end(), {v1::STAGE_KIND_DOCKER_BUILD, v1::STAGE_KIND_DOCKER_RUN,
                               v1::STAGE_KIND_DOCKER_PUSH});
  }
  SetExecutorKinds(kinds, reg->mutable_capabilities());  // the names too, for old coordinators
  SetHostHealth(reg->mutable_capabilities());
  for (auto& [key, a] : attempts_) {
    v1::HeldAttempt* held = reg->add_held();
    held->set_task_id(a.assignment.task_id());
    held->set_attempt_id(a.assignment.attempt_id());
    held->set_finished(a.life.finished());
    // Nothing more goes out for it until the coordinator says what it stored.
    Apply(a, AttemptEvent::kReconnect);
    a.sent = a.base();
    UpdateLead(a);
  }
  session_->Send(std::move(msg));
}

void Agent::OnSessionEnd(uint64_t generation, const absl::Status& status) {
  if (generation != generation_) return;
  session_.reset();
  const bool was_registered = registered_;
  registered_ = false;
  // Nothing goes out now: running tasks' output goes to the spool unbounded
  // by SendLead, so the outage stalls none of them.
  for (auto& [key, a] : attempts_) UpdateLead(a);
  if (closing_) {
    Stopped();
    return;
  }
  if (absl::IsFailedPrecondition(status)) {
    // The coordinator cannot serve this agent's protocol: no retry changes
    // that, so the agent stops and its process exits non-zero (refusal()).
    Log()->error("the coordinator at {} refused this agent for good: {}", session_target_,
                 std::string(status.message()));
    refusal_ = status;
    closing_ = true;
    Stopped();
    return;
  }
  ++failures_;
  const absl::Duration delay = backoff_.Next();
  // The first failure is news; repeats while the coordinator is away are not.
  const auto level = failures_ <= 1 || was_registered ? spdlog::level::warn : spdlog::level::debug;
  // The link has moved on by now (a standby's hint, or the next address of
  // --coordinator): the line names both, so a failover reads from the log.
  const std::string next = link_->Target();
  Log()->log(level, "stream to {} ended: {} ({}); reconnecting {}in {}", session_target_,
             std::string(status.message()), static_cast<int>(status.code()),
             next == session_target_ ? "" : absl::StrCat("to ", next, " "),
             absl::FormatDuration(delay));
  if (absl::IsInvalidArgument(status) || absl::IsUnauthenticated(status) ||
      absl::IsPermissionDenied(status)) {
    // A human must act (a certificate, a name); the backoff keeps this from
    // spinning meanwhile.
    Log()->error("the coordinator refused this agent: {}; retrying in {}",
                 std::string(status.message()), absl::FormatDuration(delay));
  } else if (absl::IsAlreadyExists(status)) {
    // Another process holds this name. Retrying with the (capped) backoff makes
    // this one a standby that takes over once the other is gone, without the
    // two evicting each other; what this one runs is kept meanwhile.
    Log()->error("the coordinator refused this agent: {}; retrying in {}",
                 std::string(status.message()), absl::FormatDuration(delay));
  }
  loop_.PostAfter(delay, [this] { Connect(); });
}

void Agent::Send(v1::AgentMessage msg) {
  if (session_ != nullptr && registered_) session_->Send(std::move(msg));
}

void Agent::Heartbeat(uint64_t generation) {
  if (generation != generation_ || !registered_ || closing_) return;
  SendHeartbeat();
  loop_.PostAfter(heartbeat_interval_, [this, generation] { Heartbeat(generation); });
}

void Agent::SendHeartbeat() {
  MeasureDisk();
  v1::AgentMessage msg;
  msg.mutable_heartbeat()->set_sent_us(NowMicros());
  msg.mutable_heartbeat()->set_free_disk_bytes(static_cast<int64_t>(free_disk_));
  msg.mutable_heartbeat()->set_unavailable_reason(UnavailableReason());
  msg.mutable_heartbeat()->set_shutting_down(shutting_down_);
  SetHostHealth(msg.mutable_heartbeat());
  Send(std::move(msg));
}

void Agent::SendHandBack(const v1::Assignment& as, const std::string& reason) {
  v1::AgentMessage msg;
  msg.mutable_hand_back()->set_task_id(as.task_id());
  msg.mutable_hand_back()->set_attempt_id(as.attempt_id());
  msg.mutable_hand_back()->set_reason(reason);
  Send(std::move(msg));
}

void Agent::OnMessage(uint64_t generation, const v1::CoordinatorMessage& msg) {
  if (generation != generation_) return;
  switch (msg.kind_case()) {
    case v1::CoordinatorMessage::kRegistered:
      registered_ = true;
      failures_ = 0;
      backoff_.Reset();
      if (msg.registered().heartbeat_interval_ms() > 0) {
        heartbeat_interval_ = absl::Milliseconds(msg.registered().heartbeat_interval_ms());
      }
      Log()->info("registered with {} as '{}' ({} slots, {} attempts held; protocol {}, "
                  "the coordinator's {})",
                  link_->Target(), options_.name, options_.slots, attempts_.size(),
                  kProtocolVersion, AgentProtocolVersion(msg.registered().protocol_version()));
      loop_.PostAfter(heartbeat_interval_, [this, generation] { Heartbeat(generation); });
      break;
    case v1::CoordinatorMessage::kAssignment:
      OnAssignment(msg.assignment());
      break;
    case v1::CoordinatorMessage::kCancel:
      OnCancel(msg.cancel());
      break;
    case v1::CoordinatorMessage::kAck:
      OnAck(msg.ack());
      break;
    case v1::CoordinatorMessage::kDrain:
      Log()->info("coordinator says: {}", msg.drain().draining() ? "draining" : "undrained");
      break;
    case v1::CoordinatorMessage::kPace:
      // The farm grew: the next heartbeat is already timed, those after it
      // follow the new interval (the coordinator allows for both).
      if (msg.pace().heartbeat_interval_ms() > 0) {
        heartbeat_interval_ = absl::Milliseconds(msg.pace().heartbeat_interval_ms());
        Log()->info("coordinator says: heartbeat every {}", absl::FormatDuration(heartbeat_interval_));
      }
      break;
    case v1::CoordinatorMessage::kKeepImages:
      keep_images_ = std::set<std::string>(msg.keep_images().images().begin(),
                                           msg.keep_images().images().end());
      break;
    default:
      break;
  }
}

void Agent::OnAssignment(const v1::Assignment& as) {
  const std::string key = Key(as.task_id(), as.attempt_id());
  if (attempts_.count(key) != 0) return;
  if (shutting_down_) {
    // Sent before the coordinator read our "shutting down": give it back
    // unstarted, at once.
    Log()->info("task={} attempt={} handed back unstarted: shutting down", as.task_id(),
                as.attempt_id());
    SendHandBack(as, "agent shutting down: not started");
    return;
  }
  if (!disk_reason_.empty()) {
    // Sent before the coordinator heard we are short of disk.
    Log()->info("task={} attempt={} handed back unstarted: {}", as.task_id(), as.attempt_id(),
                disk_reason_);
    SendHeartbeat();
    SendHandBack(as, absl::StrCat("not started: ", disk_reason_));
    return;
  }
  if (as.run().kind_case() != v1::StageSpec::kExec) {
    if (std::string docker = DockerUnreachable(); !docker.empty()) {
      // Sent before the coordinator heard that the daemon is away: back
      // unstarted, and no retry used (issue 16, item 3).
      Log()->info("task={} attempt={} handed back unstarted: {}", as.task_id(), as.attempt_id(),
                  docker);
      SendHeartbeat();
      SendHandBack(as, absl::StrCat("not started: ", docker));
      return;
    }
  }
  Executor* executor =
      as.run().kind_case() == v1::StageSpec::kExec ? exec_executor_ : docker_executor_;
  Attempt& a = attempts_[key];
  a.assignment = as;
  a.traces = executor != nullptr
                 ? executor->Traces(as)
                 : AttemptTraces{as.task_id(), as.attempt_id(), StageKindName(as.run()), {}, {}};
  if (options_.on_images_used) options_.on_images_used(StageImages(as.run()));
  a.secrets = SecretMaskForms(as);
  a.redactor = Redactor(a.secrets);
  const std::string file_name = AttemptFileName(as.task_id(), as.attempt_id());
  a.workdir = absl::StrCat(options_.work_dir, "/tasks/", file_name);
  a.started_us = NowMicros();
  Log()->info("task={} attempt={} starting '{}'", as.task_id(), as.attempt_id(), as.display_name());
  Log()->debug("task={} attempt={} assignment on the loop at={}", as.task_id(), as.attempt_id(),
               a.started_us);
  // Its directory is made right before its spawn (StartExecution), once the
  // turn's forgotten attempts have handed theirs on (FlushState).
  // Outside the task's directory: a task that cleans or archives its working
  // directory (or a docker build whose context it is) must not meet it.
  absl::StatusOr<std::unique_ptr<LogSpool>> spool =
      LogSpool::Create(absl::StrCat(options_.work_dir, "/spool/", file_name, ".log"));
  if (spool.ok()) {
    a.spool = *std::move(spool);
  } else {
    a.spool_error = std::string(spool.status().message());
  }
  // Recorded before anything runs: should the agent die from here on, its
  // next run knows of the attempt. The state is written once for every
  // attempt assigned in this loop turn, at its end, and each starts right
  // after (FlushState).
  a.start_pending = true;
  to_start_.push_back(key);
  SaveState();
}

void Agent::StartExecution(const std::string& key) {
  auto found = attempts_.find(key);
  if (found == attempts_.end() || !found->second.start_pending) return;
  Attempt& a = found->second;
  a.start_pending = false;
  const v1::Assignment& as = a.assignment;
  a.started_us = NowMicros();
  const bool stale = a.life.phase() == AttemptPhase::kStoppingStale;
  if (a.cancel_before_start || stale || a.life.phase() == AttemptPhase::kStoppingHandBack) {
    // Cancelled or to be handed back in the turn that assigned it: it ends
    // as one stopped at once would, without running.
    if (!stale) SendStarted(a);  // the coordinator moved on from a stale one
    ExitInfo info;
    info.cancelled = true;
    OnExit(key, std::move(info));
    return;
  }
  Executor* executor =
      as.run().kind_case() == v1::StageSpec::kExec ? exec_executor_ : docker_executor_;
  // An emptied one renamed, or one mkdir; a leftover of the same name (or a
  // missing tasks directory) takes the long way.
  if (!work_dirs_.Make(a.workdir)) {
    std::error_code ec;
    std::filesystem::remove_all(a.workdir, ec);
    std::filesystem::create_directories(a.workdir, ec);
    if (ec) a.start_error = absl::StrCat("cannot create ", a.workdir, ": ", ec.message());
  }

  ExecCallbacks cb;
  std::shared_ptr<SendLead> lead = a.lead;
  cb.on_output = [this, key, lead](std::string data) {
    // Counted at once, on the executor's thread, so that wait_for_room sees it.
    const size_t raw = data.size();
    budget_.Add(static_cast<int64_t>(raw));
    lead->Read(raw);
    loop_.PostGrouped([this, key, data = std::move(data), raw]() mutable {
      OnOutput(key, std::move(data), raw);
    });
  };
  const std::vector<int32_t> gpus(as.gpu_ids().begin(), as.gpu_ids().end());
  cb.on_exit = [this, key, gpus](ExitInfo info) {
    // Between GPU tasks: its GPUs are probed here, on the attempt's thread
    // (a probe blocks), before the agent hears of the exit, so that a GPU
    // that fails is fenced (heartbeat) before the attempt is handed back.
    if (!gpus.empty() && options_.probe_gpus) {
      const std::string failing = options_.probe_gpus(gpus);
      const bool failed = info.exit_code != 0 || info.signal != 0 || !info.error.empty();
      if (!failing.empty() && failed && !info.cancelled && info.host_lost.empty()) {
        info.host_lost = absl::StrCat("failed on a GPU that fails its probe: ", failing);
      }
    }
    loop_.PostGrouped(
        [this, key, info = std::move(info)]() mutable { OnExit(key, std::move(info)); });
  };
  cb.read_room = [lead] { return lead->Room(); };
  cb.wait_for_room = [this, lead](absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    return budget_.WaitForRoom(timeout) && lead->WaitForRoom(deadline - absl::Now());
  };
  // When the first process was spawned: the attempt's start, which Started
  // says (not after the bookkeeping below).
  auto spawned_at = std::make_shared<std::atomic<int64_t>>(0);
  // The executor spawns after this: a process it reports, forked in the tick
  // this and the report's read both fall in, started in that tick.
  const uint64_t ticks_before = BootTicksNow();
  cb.on_process = [this, key, spawned_at, ticks_before](pid_t leader) {
    int64_t none = 0;
    spawned_at->compare_exchange_strong(none, NowMicros());
    uint64_t start_time = ticks_before;
    if (ticks_before == 0 || BootTicksNow() != ticks_before) {
      // Read now, while the leader cannot have been reaped.
      const std::optional<ProcStat> st = ReadProcStat(leader);
      if (!st) return;  // already gone
      start_time = st->start_time;
    }
    RecordedProcess p;
    p.set_pid(leader);
    p.set_start_time(start_time);
    loop_.PostGrouped([this, key, p] {
      auto it = attempts_.find(key);
      if (it == attempts_.end() || !it->second.life.running()) return;
      it->second.processes.push_back(p);
      SaveState();
    });
  };
  // A silent attempt's Started waits (AgentOptions::started_hold) until its
  // executor says it still runs, its output comes, or its result drops it;
  // the executor's own thread times it, so the loop sets no timer per spawn.
  // Not once shutting down (BeginShutdown flushed the held ones).
  const bool hold = executor != nullptr && executor->ReportsRunning() &&
                    options_.started_hold > absl::ZeroDuration() && !shutting_down_;
  if (hold) {
    cb.running_after = options_.started_hold;
    cb.on_running = [this, key] {
      loop_.PostGrouped([this, key] {
        auto it = attempts_.find(key);
        if (it != attempts_.end()) FlushStarted(it->second);
      });
    };
  }
  absl::StatusOr<std::unique_ptr<Execution>> exec;
  if (!a.start_error.empty()) {
    exec = absl::InternalError(a.start_error);
  } else if (!a.spool_error.empty()) {
    exec = absl::InternalError(absl::StrCat("cannot keep the output: ", a.spool_error));
  } else if (executor == nullptr) {
    exec = absl::FailedPreconditionError(
        "this agent runs no Docker stages (start it with --docker)");
  } else {
    exec = executor->Start(as, a.workdir, std::move(cb));
  }
  // Said once the process runs (or could not start), not before: encoding
  // and writing the message no longer delays the spawn, and the time it
  // carries is the spawn's. Nothing of the attempt can reach the
  // coordinator before it: its output and exit come through this loop.
  const int64_t spawned_us = spawned_at->load() != 0 ? spawned_at->load() : NowMicros();
  Log()->debug("task={} attempt={} spawn from={} to={}", as.task_id(), as.attempt_id(),
               a.started_us, spawned_us);
  a.started_us = spawned_us;
  if (!exec.ok()) {
    SendStarted(a);
    ExitInfo info;
    info.error = std::string(exec.status().message());
    OnOutput(key, absl::StrCat("musafarm-agent: ", info.error, "\n"), 0);
    OnExit(key, std::move(info));
    return;
  }
  a.execution = *std::move(exec);
  // on_running posts to this thread: it finds the flag set.
  if (hold) {
    a.started_held = true;
  } else {
    SendStarted(a);
  }
}

void Agent::FlushStarted(Attempt& a) {
  if (!a.started_held) return;
  a.started_held = false;
  SendStarted(a);
}

void Agent::SendStarted(const Attempt& a) {
  v1::AgentMessage started;
  started.mutable_started()->set_task_id(a.assignment.task_id());
  started.mutable_started()->set_attempt_id(a.assignment.attempt_id());
  started.mutable_started()->set_started_us(a.started_us);
  started.mutable_started()->set_sent_us(NowMicros());  // held or queued: the span says so
  Send(std::move(started));
}

void Agent::OnOutput(const std::string& key, std::string data, size_t raw_size) {
  // The read bytes stop counting only once what is kept of them counts as
  // spooled (AppendLog): released first, the budget would dip by a whole read
  // meanwhile and an executor waiting for room could read another (1 MiB).
  auto release =
      absl::MakeCleanup([this, raw_size] { budget_.Add(-static_cast<int64_t>(raw_size)); });
  auto it = attempts_.find(key);
  if (it == attempts_.end()) return;
  Attempt& a = it->second;
  // Without secrets to redact the bytes are kept as read, not copied.
  AppendLog(a, a.redactor.empty() ? std::move(data) : a.redactor.Feed(data));
  Pump(a);
  a.lead->Spooled(raw_size);  // after Pump counted them as unsent: the lead never looks short
}

void Agent::AppendLog(Attempt& a, std::string output) {
  if (output.empty() || a.spool == nullptr || !a.spool_error.empty()) return;
  // The coordinator keeps the first max_log_bytes of a log and one marker line
  // (--max-log-bytes). The agent cuts at the same byte and spools its own
  // marker, so the coordinator still sees a log past the limit (and writes its
  // marker), and drops everything after on this host: a task printing without
  // end costs neither the network nor the spool.
  const uint64_t max = a.assignment.max_log_bytes();
  if (a.log_cut) {
    a.log_dropped += output.size();
    return;
  }
  std::string redacted = std::move(output);
  if (max > 0 && a.total() + redacted.size() > max) {
    const size_t keep = static_cast<size_t>(max - std::min(max, a.total()));
    a.log_cut = true;
    a.log_dropped += redacted.size() - keep;
    redacted.resize(keep);
    absl::StrAppend(&redacted, "\n[musafarm] log truncated at ", max,
                    " bytes (--max-log-bytes); the agent drops further output\n");
    Log()->warn("task={} attempt={}: output reached {} bytes (--max-log-bytes): dropping the rest "
                "on the agent",
                a.assignment.task_id(), a.assignment.attempt_id(), max);
  }
  if (absl::Status s = a.spool->Append(redacted); !s.ok()) {
    // Keeping the rest in memory would undo the bound, and dropping it would
    // send an incomplete log as complete: the attempt fails instead.
    a.spool_error = std::string(s.message());
    // A full disk is this host's trouble, not the task's: tell the coordinator
    // we take no work (the heartbeat measures the disk) and hand the attempt
    // back, so that it runs elsewhere without using up its retries. Any other
    // spool failure fails the attempt.
    SendHeartbeat();
    if (!disk_reason_.empty() && a.life.running() && Apply(a, AttemptEvent::kHandBack)) {
      a.hand_back_reason = absl::StrCat("agent could not keep the output (", disk_reason_, ")");
    }
    const bool hand_back = a.life.phase() == AttemptPhase::kStoppingHandBack;
    Log()->error("task={} attempt={}: {}; stopping the attempt{}", a.assignment.task_id(),
                 a.assignment.attempt_id(), a.spool_error, hand_back ? " to hand it back" : "");
    if (a.life.running() && a.execution != nullptr) a.execution->Cancel();
    return;
  }
  budget_.Add(static_cast<int64_t>(redacted.size()));
  if (!spool_full_logged_ && budget_.Full()) {
    spool_full_logged_ = true;
    Log()->warn(
        "{} of output not yet acknowledged (--max-spool-bytes): running attempts' output is no "
        "longer read until the coordinator acknowledges some",
        FormatBytes(static_cast<uint64_t>(budget_.used())));
  }
}

void Agent::OnExit(const std::string& key, ExitInfo info) {
  auto it = attempts_.find(key);
  if (it == attempts_.end()) return;
  Attempt& a = it->second;
  // bench/watch_trace.py.
  Log()->debug("task={} attempt={} exit on the loop at={}", a.assignment.task_id(),
               a.assignment.attempt_id(), NowMicros());
  if (!info.host_lost.empty() && !info.cancelled && a.life.phase() == AttemptPhase::kRunning) {
    // The host failed it, not the stage (issue 16, item 3): handed back, so
    // that it runs again, elsewhere, without using a retry. The heartbeat
    // first: the coordinator must know what this host cannot run before the
    // task is queued again.
    Log()->warn("task={} attempt={}: {}", a.assignment.task_id(), a.assignment.attempt_id(),
                info.host_lost);
    if (info.daemon_lost && options_.on_docker_lost) {
      options_.on_docker_lost(info.host_lost);
    }
    if (Apply(a, AttemptEvent::kHandBack)) {
      a.hand_back_reason = info.host_lost;
      SendHeartbeat();
    }
  }
  const AttemptPhase before = a.life.phase();
  if (!Apply(a, AttemptEvent::kExit)) return;
  a.dir_reusable = info.output_complete;
  if (options_.on_images_used) options_.on_images_used(StageImages(a.assignment.run()));
  // The Execution's thread has delivered its last callback; joining is quick.
  a.execution.reset();
  if (before == AttemptPhase::kStoppingStale) {
    Forget(key);
    return;
  }
  if (before == AttemptPhase::kStoppingHandBack) {
    Log()->info("task={} attempt={} handed back: {}", a.assignment.task_id(),
                a.assignment.attempt_id(), a.hand_back_reason);
    // Not connected: not listed at the next registration either, which the
    // coordinator treats as lost.
    FlushStarted(a);
    SendHandBack(a.assignment, a.hand_back_reason);
    Forget(key);
    return;
  }
  // Collected files are redacted in place before anything measures, parses or
  // sends them. One that cannot be redacted is not sent at all.
  a.files.clear();
  for (CollectedFile& f : info.files) {
    std::error_code type_ec;
    if (!std::filesystem::is_regular_file(f.host_path, type_ec)) continue;  // not an artifact
    // Measured before redacting: the coordinator refuses chunks past the limit
    // (it would end the stream at every resend), and redacting would rewrite
    // the whole file (a sparse one in full) only for it to be dropped.
    const uintmax_t size = std::filesystem::file_size(f.host_path, type_ec);
    if (!type_ec && size > limits::kMaxArtifactBytes) {
      Log()->warn("task={} attempt={}: artifact '{}' is {} bytes, over the limit of {}: not kept",
                  a.assignment.task_id(), a.assignment.attempt_id(), f.name, size,
                  limits::kMaxArtifactBytes);
      AppendLog(a, a.redactor.Feed(absl::StrCat(
                       "musafarm-agent: not sending ", f.source, ": ", size,
                       " bytes, over the artifact limit of ", limits::kMaxArtifactBytes, " bytes (",
                       FormatBytes(limits::kMaxArtifactBytes), ")\n")));
      continue;
    }
    if (absl::Status s = RedactFile(f.host_path, a.secrets); !s.ok()) {
      AppendLog(a, a.redactor.Feed(absl::StrCat("musafarm-agent: not sending ", f.source, ": ",
                                                s.message(), "\n")));
      continue;
    }
    a.files.push_back(std::move(f));
  }
  // Collected files become artifacts; JUnit reports and pytest summaries in
  // them become counts (TestReports says which wins). Before the log is
  // finished: a report that cannot be read is said in it.
  TestReports tests;
  for (const CollectedFile& f : a.files) {
    std::error_code size_ec;
    const uintmax_t size = std::filesystem::file_size(f.host_path, size_ec);
    if (size_ec || size > limits::kMaxArtifactBytes) continue;  // grew after the check above
    v1::Artifact* artifact = a.result.add_artifacts();
    artifact->set_name(f.name);
    artifact->set_source(f.source);
    artifact->set_size(size);
    std::ifstream in(f.host_path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    const std::string refused = tests.Add(f.name, text.str());
    if (!refused.empty()) AppendLog(a, a.redactor.Feed(absl::StrCat(refused, "\n")));
  }
  // The process has ended: a tail held back as a possible secret start is not one.
  AppendLog(a, a.redactor.Finish());
  v1::AttemptResult& r = a.result;
  r.set_task_id(a.assignment.task_id());
  r.set_attempt_id(a.assignment.attempt_id());
  r.set_exit_code(info.exit_code);
  r.set_signal(info.signal);
  r.set_cancelled(info.cancelled);
  r.set_timed_out(info.timed_out);
  r.set_error(RedactString(info.error, a.secrets));
  if (!a.spool_error.empty() && info.error.empty()) {
    // Stopped by us, not by the user: an error, not a cancel.
    r.set_cancelled(false);
    r.set_timed_out(false);
    r.set_error(RedactString(absl::StrCat("the agent could not keep the output: ", a.spool_error),
                             a.secrets));
  }
  // An error text may quote file names or tool output in any bytes; a proto
  // string must be UTF-8 or the coordinator cannot parse the result.
  r.set_error(CoerceUtf8(r.error()));
  r.set_started_us(a.started_us);
  r.set_ended_us(NowMicros());
  r.set_log_size(a.total());
  r.set_log_dropped_bytes(a.log_dropped);
  // The outcome those fields say, for coordinators that read it; the fields
  // stay filled for old ones.
  r.set_outcome(LegacyOutcome(r));
  if (std::optional<v1::TestCounts> counts = tests.Result()) *r.mutable_tests() = *counts;
  // A process that exited 0 may still hide a suite that crashed, timed out or
  // left no output (run_tests.sh always exits 0): the suites decide.
  if (r.outcome() == v1::ATTEMPT_OUTCOME_SUCCEEDED || r.outcome() == v1::ATTEMPT_OUTCOME_FAILED) {
    r.set_suite_failure(SuiteFailure(JudgeSuites(a.assignment.run(), a.files)));
    if (!r.suite_failure().empty()) r.set_outcome(v1::ATTEMPT_OUTCOME_FAILED);
  }
  Log()->info("task={} attempt={} ended: exit={} signal={}{}{}", r.task_id(), r.attempt_id(),
              r.exit_code(), r.signal(), r.cancelled() ? " cancelled" : "",
              r.timed_out() ? " timed out" : "");
  PersistResult(key, a);
  Pump(a);
  CheckShutdown();
}

bool Agent::Sending(const Attempt& a) const {
  return session_ != nullptr && registered_ && !a.life.unconfirmed();
}

size_t Agent::Sharing(const Attempt& a) const {
  size_t n = 1;
  for (const auto& [key, other] : attempts_) {
    if (&other != &a && other.total() > other.base()) ++n;
  }
  return n;
}

void Agent::UpdateLead(Attempt& a) {
  a.lead->Update(a.total() - a.sent, Sending(a), ShareOf(SendLead::kMax, Sharing(a)));
}

void Agent::Pump(Attempt& a) {
  if (!Sending(a)) {
    UpdateLead(a);  // not bounded while nothing goes out: the spool absorbs the output
    return;
  }
  const uint64_t window = ShareOf(Agent::kSendWindow, Sharing(a));
  if (a.sent < a.total() && a.sent - a.base() < window) FlushStarted(a);  // before its output
  while (a.sent < a.total() && a.sent - a.base() < window) {
    absl::StatusOr<std::string> data = a.spool->Read(a.sent, kMaxLogChunk);
    if (!data.ok()) {
      // Tried again at the next acknowledgement or output.
      Log()->error("task={} attempt={}: {}", a.assignment.task_id(), a.assignment.attempt_id(),
                   std::string(data.status().message()));
      return;
    }
    v1::AgentMessage msg;
    v1::LogChunk* chunk = msg.mutable_log();
    chunk->set_task_id(a.assignment.task_id());
    chunk->set_attempt_id(a.assignment.attempt_id());
    chunk->set_offset(a.sent);
    a.sent += data->size();
    chunk->set_data(*std::move(data));
    Send(std::move(msg));
  }
  UpdateLead(a);
  if (a.life.phase() == AttemptPhase::kFinished && a.sent == a.total() && a.result_recorded) {
    // The result says when it started (AttemptResult.started_us): a Started
    // still held is not sent (AgentOptions::started_hold).
    a.started_held = false;
    SendArtifacts(a);
    v1::AgentMessage msg;
    *msg.mutable_result() = a.result;
    msg.mutable_result()->set_sent_us(NowMicros());
    // bench/watch_trace.py: before the send, which may have it on the
    // coordinator before this thread runs again.
    Log()->debug("task={} attempt={} result sent at={}", a.assignment.task_id(),
                 a.assignment.attempt_id(), NowMicros());
    Send(std::move(msg));
    Apply(a, AttemptEvent::kResultSent);
  }
}

void Agent::SendArtifacts(Attempt& a) {
  // Whole files, from the start: the coordinator skips bytes it already has,
  // so a resend after a reconnect is harmless.
  for (const v1::Artifact& artifact : a.result.artifacts()) {
    const CollectedFile* file = nullptr;
    for (const CollectedFile& f : a.files) {
      if (f.name == artifact.name()) file = &f;
    }
    if (file == nullptr) continue;
    std::ifstream in(file->host_path, std::ios::binary);
    std::string buf(kMaxChunk, '\0');
    uint64_t offset = 0;
    while (in && offset < artifact.size()) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const size_t n = static_cast<size_t>(in.gcount());
      if (n == 0) break;
      v1::AgentMessage msg;
      v1::ArtifactChunk* chunk = msg.mutable_artifact();
      chunk->set_task_id(a.assignment.task_id());
      chunk->set_attempt_id(a.assignment.attempt_id());
      chunk->set_name(artifact.name());
      chunk->set_offset(offset);
      chunk->set_data(buf.substr(0, std::min<uint64_t>(n, artifact.size() - offset)));
      offset += chunk->data().size();
      Send(std::move(msg));
    }
  }
}

void Agent::OnAck(const v1::Ack& ack) {
  const std::string key = Key(ack.task_id(), ack.attempt_id());
  auto it = attempts_.find(key);
  if (it == attempts_.end()) return;
  Attempt& a = it->second;
  if (ack.result_stored()) {
    if (Apply(a, AttemptEvent::kStored)) Forget(key);
    return;
  }
  if (a.spool != nullptr && ack.log_offset() > a.base()) {
    budget_.Add(-static_cast<int64_t>(a.spool->Ack(ack.log_offset())));
    if (!budget_.Full()) spool_full_logged_ = false;
  }
  a.sent = std::max(a.sent, a.base());
  if (ack.resend()) {
    if (ack.log_offset() < a.base() && a.life.finished()) {
      // Bytes the coordinator lacks are gone here (e.g. it lost what it had
      // acknowledged): the log cannot be completed, so the attempt runs again.
      Log()->error(
          "task={} attempt={}: coordinator has {} log bytes but this agent kept only those from "
          "{}: handing the attempt back",
          ack.task_id(), ack.attempt_id(), ack.log_offset(), a.base());
      FlushStarted(a);
      SendHandBack(a.assignment, "agent no longer holds the whole log of the finished attempt");
      if (Apply(a, AttemptEvent::kLogLost)) Forget(key);
      return;
    }
    if (ack.log_offset() < a.base()) {
      Log()->error("task={} attempt={}: coordinator has {} bytes but {} were acknowledged before",
                   ack.task_id(), ack.attempt_id(), ack.log_offset(), a.base());
    }
    a.sent = a.base();
    Apply(a, AttemptEvent::kConfirmed);
    // The start may have been lost with the old stream; the coordinator
    // ignores a repeat.
    a.started_held = false;
    SendStarted(a);
  }
  Pump(a);
}

void Agent::OnCancel(const v1::CancelAttempt& c) {
  const std::string key = Key(c.task_id(), c.attempt_id());
  auto it = attempts_.find(key);
  if (it == attempts_.end()) return;
  Attempt& a = it->second;
  Log()->info("task={} attempt={} cancel: {}", c.task_id(), c.attempt_id(), c.reason());
  // Running: stopped, and reported (cancelled) once it has exited; unless it
  // was refused at re-registration (kStoppingStale): then the coordinator has
  // moved on and nobody waits for its result (nor for a hand-back). Finished:
  // a coordinator that has seen (or refuses) the result needs nothing more
  // (kDone).
  if (!Apply(a, AttemptEvent::kCancel)) return;
  if (a.life.phase() == AttemptPhase::kDone) {
    Forget(key);
  } else if (a.life.running() && a.execution != nullptr) {
    a.execution->Cancel();
  } else if (a.start_pending) {
    a.cancel_before_start = true;  // StartExecution ends it instead
  }
}

bool Agent::Apply(Attempt& a, AttemptEvent event) {
  if (absl::Status s = a.life.Apply(event); !s.ok()) {
    Log()->error("task={} attempt={}: {}", a.assignment.task_id(), a.assignment.attempt_id(),
                 std::string(s.message()));
    return false;
  }
  return true;
}

void Agent::Forget(const std::string& key) {
  auto it = attempts_.find(key);
  if (it == attempts_.end()) return;
  Attempt& a = it->second;
  if (a.spool != nullptr) budget_.Add(-static_cast<int64_t>(a.spool->held()));
  if (!budget_.Full()) spool_full_logged_ = false;
  // Its files go once this turn's starts are done (FlushState): an ack of a
  // result and the assignment it unblocked often arrive together, and the
  // spawn need not wait for a directory tree's removal. The state written
  // before no longer lists it, so should the agent die in between, its next
  // run removes them as leftovers.
  to_remove_.push_back(Removal{key, a.workdir, a.result_path, a.dir_reusable});
  attempts_.erase(it);  // removes the spool file
  SaveState();
  CheckShutdown();
}

}  // namespace musafarm::agent
