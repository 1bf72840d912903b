#include "agent/agent.h"

#include <sys/statvfs.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/clock.h"
#include "common/labels.h"
#include "agent/pytest_summary.h"
#include "agent/task_env.h"
#include "common/logging.h"

namespace musafarm::agent {
namespace {

constexpr size_t kMaxChunk = 64 * 1024;
constexpr char kVersion[] = "0.1.0";

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("agent");
  return log;
}

int64_t FreeDisk(const std::string& dir) {
  struct statvfs st;
  if (::statvfs(dir.c_str(), &st) != 0) return 0;
  return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
}

}  // namespace

Agent::Agent(AgentOptions options, Executor* exec, Executor* docker)
    : options_(std::move(options)),
      exec_executor_(exec),
      docker_executor_(docker),
      backoff_(options_.reconnect_initial, options_.reconnect_max) {}

Agent::~Agent() { Stop(); }

std::string Agent::Key(const std::string& task, uint64_t attempt) {
  return absl::StrCat(task, "#", attempt);
}

absl::Status Agent::Start() {
  if (options_.name.empty()) return absl::InvalidArgumentError("agent name is empty");
  if (options_.slots < 1) return absl::InvalidArgumentError("--slots must be at least 1");
  for (const std::string& label : options_.labels) {
    if (absl::Status s = ValidateLabel(label); !s.ok()) return s;
  }
  std::error_code ec;
  std::filesystem::create_directories(options_.work_dir + "/tasks", ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create work dir '", options_.work_dir, "': ", ec.message()));
  }
  grpc::ChannelArguments args;
  // Finds a dead TCP connection (a vanished coordinator host) in ~30 s even
  // when no task is writing; the coordinator permits pings every 10 s.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  // Our own backoff paces reconnects; keep gRPC's short so it does not add to it.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  channel_ =
      grpc::CreateCustomChannel(options_.coordinator, grpc::InsecureChannelCredentials(), args);
  stub_ = v1::AgentService::NewStub(channel_);
  loop_.Start();
  started_ = true;
  loop_.Post([this] { Connect(); });
  return absl::OkStatus();
}

void Agent::Stop() {
  if (!started_ || stopping_) return;
  absl::Notification cancelled;
  loop_.Post([this, &cancelled] {
    stopping_ = true;
    for (auto& [key, a] : attempts_) {
      if (a.execution != nullptr) a.execution->Cancel();
    }
    cancelled.Notify();
  });
  cancelled.WaitForNotification();
  // Wait (bounded by the kill grace) for executions to report their exits.
  for (int i = 0; i < 200; ++i) {
    bool running = false;
    loop_.RunSync([this, &running] {
      for (auto& [key, a] : attempts_) running = running || !a.finished;
    });
    if (!running) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  // Wait for the stream's end to reach the loop: its callbacks hold `this`.
  absl::Notification ended;
  loop_.RunSync([this, &ended] {
    if (stream_ == nullptr) {
      ended.Notify();
      return;
    }
    stream_ended_ = &ended;
    stream_->Cancel();
  });
  ended.WaitForNotificationWithTimeout(absl::Seconds(10));
  loop_.Stop();
  attempts_.clear();  // joins execution threads
}

void Agent::Connect() {
  if (stopping_) return;
  const uint64_t gen = ++generation_;
  registered_ = false;
  stream_ = CoordinatorStream::Open(
      stub_.get(),
      [this, gen](v1::CoordinatorMessage msg) {
        loop_.Post([this, gen, msg = std::move(msg)] { OnMessage(gen, msg); });
      },
      [this, gen](grpc::Status status) {
        loop_.Post([this, gen, status] { OnStreamEnd(gen, status); });
      });
  v1::AgentMessage msg;
  v1::Register* reg = msg.mutable_register_();
  reg->set_name(options_.name);
  for (const std::string& l : options_.labels) reg->add_labels(l);
  reg->set_slots(options_.slots);
  reg->set_version(kVersion);
  reg->mutable_capabilities()->set_free_disk_bytes(FreeDisk(options_.work_dir));
  reg->mutable_capabilities()->add_executors("exec");
  reg->mutable_capabilities()->set_gpus(options_.gpus.count);
  reg->mutable_capabilities()->set_gpu_vendor(options_.gpus.vendor);
  if (docker_executor_ != nullptr) {
    for (const char* kind : {"docker_build", "docker_run", "docker_push"}) {
      reg->mutable_capabilities()->add_executors(kind);
    }
  }
  for (auto& [key, a] : attempts_) {
    v1::HeldAttempt* held = reg->add_held();
    held->set_task_id(a.assignment.task_id());
    held->set_attempt_id(a.assignment.attempt_id());
    held->set_finished(a.finished);
    // Nothing more goes out for it until the coordinator says what it stored.
    a.awaiting_ack = true;
    a.sent = a.base;
    a.result_sent = false;
  }
  stream_->Send(std::move(msg));
}

void Agent::OnStreamEnd(uint64_t generation, const grpc::Status& status) {
  if (generation != generation_) return;
  stream_.reset();
  if (stream_ended_ != nullptr) {
    stream_ended_->Notify();
    stream_ended_ = nullptr;
  }
  const bool was_registered = registered_;
  registered_ = false;
  if (stopping_) return;
  ++failures_;
  const absl::Duration delay = backoff_.Next();
  // The first failure is news; repeats while the coordinator is away are not.
  const auto level = failures_ <= 1 || was_registered ? spdlog::level::warn : spdlog::level::debug;
  Log()->log(level, "stream to {} ended: {} ({}); reconnecting in {}", options_.coordinator,
             status.error_message(), static_cast<int>(status.error_code()),
             absl::FormatDuration(delay));
  if (status.error_code() == grpc::StatusCode::INVALID_ARGUMENT) {
    Log()->error("the coordinator refused this agent: {}", status.error_message());
  }
  loop_.PostAfter(delay, [this] { Connect(); });
}

void Agent::Send(v1::AgentMessage msg) {
  if (stream_ != nullptr && registered_) stream_->Send(std::move(msg));
}

void Agent::Heartbeat(uint64_t generation) {
  if (generation != generation_ || !registered_ || stopping_) return;
  v1::AgentMessage msg;
  msg.mutable_heartbeat()->set_sent_us(NowMicros());
  Send(std::move(msg));
  loop_.PostAfter(heartbeat_interval_, [this, generation] { Heartbeat(generation); });
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
      Log()->info("registered with {} as '{}' ({} slots, {} attempts held)", options_.coordinator,
                  options_.name, options_.slots, attempts_.size());
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
    default:
      break;
  }
}

void Agent::OnAssignment(const v1::Assignment& as) {
  const std::string key = Key(as.task_id(), as.attempt_id());
  if (attempts_.count(key) != 0) return;
  Attempt& a = attempts_[key];
  a.assignment = as;
  a.secrets = SecretValues(as);
  a.redactor = Redactor(a.secrets);
  a.workdir = absl::StrCat(options_.work_dir, "/tasks/",
                           absl::StrReplaceAll(as.task_id(), {{"/", "_"}}), "-", as.attempt_id());
  a.started_us = NowMicros();
  Log()->info("task={} attempt={} starting '{}'", as.task_id(), as.attempt_id(), as.display_name());
  std::error_code ec;
  std::filesystem::remove_all(a.workdir, ec);
  std::filesystem::create_directories(a.workdir, ec);

  v1::AgentMessage started;
  started.mutable_started()->set_task_id(as.task_id());
  started.mutable_started()->set_attempt_id(as.attempt_id());
  started.mutable_started()->set_started_us(a.started_us);
  Send(std::move(started));

  ExecCallbacks cb;
  cb.on_output = [this, key](std::string data) {
    loop_.Post([this, key, data = std::move(data)]() mutable { OnOutput(key, std::move(data)); });
  };
  cb.on_exit = [this, key](ExitInfo info) {
    loop_.Post([this, key, info = std::move(info)]() mutable { OnExit(key, std::move(info)); });
  };
  Executor* executor =
      as.run().kind_case() == v1::StageSpec::kExec ? exec_executor_ : docker_executor_;
  absl::StatusOr<std::unique_ptr<Execution>> exec;
  if (ec) {
    exec = absl::InternalError(absl::StrCat("cannot create ", a.workdir, ": ", ec.message()));
  } else if (executor == nullptr) {
    exec = absl::FailedPreconditionError(
        "this agent runs no Docker stages (start it with --docker)");
  } else {
    exec = executor->Start(as, a.workdir, std::move(cb));
  }
  if (!exec.ok()) {
    ExitInfo info;
    info.error = std::string(exec.status().message());
    OnOutput(key, absl::StrCat("musafarm-agent: ", info.error, "\n"));
    OnExit(key, std::move(info));
    return;
  }
  a.execution = *std::move(exec);
}

void Agent::OnOutput(const std::string& key, std::string data) {
  auto it = attempts_.find(key);
  if (it == attempts_.end()) return;
  Attempt& a = it->second;
  AppendLog(a, a.redactor.Feed(data));
  Pump(a);
}

void Agent::AppendLog(Attempt& a, const std::string& redacted) {
  a.buffer += redacted;
  a.total += redacted.size();
}

void Agent::OnExit(const std::string& key, ExitInfo info) {
  auto it = attempts_.find(key);
  if (it == attempts_.end()) return;
  Attempt& a = it->second;
  a.finished = true;
  // Collected files are redacted in place before anything measures, parses or
  // sends them. One that cannot be redacted is not sent at all.
  a.files.clear();
  for (CollectedFile& f : info.files) {
    std::error_code type_ec;
    if (!std::filesystem::is_regular_file(f.host_path, type_ec)) continue;  // not an artifact
    if (absl::Status s = RedactFile(f.host_path, a.secrets); !s.ok()) {
      AppendLog(a, a.redactor.Feed(absl::StrCat("musafarm-agent: not sending ", f.source, ": ",
                                                s.message(), "\n")));
      continue;
    }
    a.files.push_back(std::move(f));
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
  r.set_started_us(a.started_us);
  r.set_ended_us(NowMicros());
  r.set_log_size(a.total);
  // Collected files become artifacts; pytest summaries in them become counts.
  v1::TestCounts tests;
  bool any_tests = false;
  for (const CollectedFile& f : a.files) {
    std::error_code size_ec;
    const uintmax_t size = std::filesystem::file_size(f.host_path, size_ec);
    if (size_ec) continue;
    v1::Artifact* artifact = r.add_artifacts();
    artifact->set_name(f.name);
    artifact->set_source(f.source);
    artifact->set_size(size);
    std::ifstream in(f.host_path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    any_tests = ParsePytestOutput(text.str(), &tests) || any_tests;
  }
  if (any_tests) *r.mutable_tests() = tests;
  Log()->info("task={} attempt={} ended: exit={} signal={}{}{}", r.task_id(), r.attempt_id(),
              r.exit_code(), r.signal(), r.cancelled() ? " cancelled" : "",
              r.timed_out() ? " timed out" : "");
  // The Execution's thread has delivered its last callback; joining is quick.
  a.execution.reset();
  if (a.stale) {
    Forget(key);
    return;
  }
  if (stopping_) return;
  Pump(a);
}

void Agent::Pump(Attempt& a) {
  if (stream_ == nullptr || !registered_ || a.awaiting_ack) return;
  while (a.sent < a.total) {
    const size_t from = static_cast<size_t>(a.sent - a.base);
    const size_t n = std::min(kMaxChunk, a.buffer.size() - from);
    v1::AgentMessage msg;
    v1::LogChunk* chunk = msg.mutable_log();
    chunk->set_task_id(a.assignment.task_id());
    chunk->set_attempt_id(a.assignment.attempt_id());
    chunk->set_offset(a.sent);
    chunk->set_data(a.buffer.substr(from, n));
    a.sent += n;
    Send(std::move(msg));
  }
  if (a.finished && !a.result_sent) {
    SendArtifacts(a);
    v1::AgentMessage msg;
    *msg.mutable_result() = a.result;
    Send(std::move(msg));
    a.result_sent = true;
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
    Forget(key);
    return;
  }
  if (ack.log_offset() > a.base) {
    const uint64_t drop = std::min<uint64_t>(ack.log_offset(), a.total) - a.base;
    a.buffer.erase(0, static_cast<size_t>(drop));
    a.base += drop;
  }
  if (ack.resend()) {
    if (ack.log_offset() < a.base) {
      Log()->error("task={} attempt={}: coordinator has {} bytes but {} were acknowledged before",
                   ack.task_id(), ack.attempt_id(), ack.log_offset(), a.base);
    }
    a.sent = a.base;
    a.result_sent = false;
    a.awaiting_ack = false;
    // The start may have been lost with the old stream; the coordinator
    // ignores a repeat.
    v1::AgentMessage started;
    started.mutable_started()->set_task_id(a.assignment.task_id());
    started.mutable_started()->set_attempt_id(a.assignment.attempt_id());
    started.mutable_started()->set_started_us(a.started_us);
    Send(std::move(started));
    Pump(a);
  }
}

void Agent::OnCancel(const v1::CancelAttempt& c) {
  const std::string key = Key(c.task_id(), c.attempt_id());
  auto it = attempts_.find(key);
  if (it == attempts_.end()) return;
  Attempt& a = it->second;
  Log()->info("task={} attempt={} cancel: {}", c.task_id(), c.attempt_id(), c.reason());
  if (!a.finished) {
    // Refused at re-registration: the coordinator has moved on, so nobody
    // waits for this result.
    a.stale = a.awaiting_ack;
    a.execution->Cancel();  // the result (cancelled) is reported when it has exited
  } else if (a.result_sent || a.awaiting_ack) {
    // The coordinator has seen (or refuses) our result: nothing more to say.
    Forget(key);
  }
}

void Agent::Forget(const std::string& key) {
  auto it = attempts_.find(key);
  if (it == attempts_.end()) return;
  std::error_code ec;
  std::filesystem::remove_all(it->second.workdir, ec);
  attempts_.erase(it);
}

}  // namespace musafarm::agent
