// Many agents from one process, for the scale figures of issue 19: each
// simulated agent has its own channel, TCP connection and Connect stream, as a
// real agent host would, registers with its slots, heartbeats at the interval
// the coordinator gives it, and answers every assignment at once (started,
// then succeeded with an empty log): a no-op task that costs the agent
// nothing, so what is measured is the coordinator.
//
//   agent_sim --coordinator HOST:PORT --agents N [--first I] [--prefix sim-]
//             [--slots S] [--label KEY=VALUE]...
//             [--heartbeat-ms MS] [--keepalive on|off]   (diagnostics: what each costs)
//
// Prints "registered N" once all N registered, then runs until SIGTERM/SIGINT
// or stdin closes, and prints one JSON line of counters (also at each SIGUSR1). No thread per agent:
// gRPC's callback API runs every stream's reactions on its shared pollers, and
// one thread here sends every heartbeat. Each connection takes a descriptor,
// so the soft RLIMIT_NOFILE is raised to the hard one (say so if N does not
// fit).
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/peer_compat.h"
#include "common/protocol_version.h"
#include "common/stream_outbox.h"
#include "grpcpp/grpcpp.h"
#include "musafarm/v1/agent_service.grpc.pb.h"

namespace musafarm::bench {
namespace {

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct Counters {
  std::atomic<int64_t> registered{0};
  std::atomic<int64_t> ended{0};
  std::atomic<int64_t> heartbeats{0};
  std::atomic<int64_t> assignments{0};
};

// One simulated agent: a client bidi reactor. One read always outstanding,
// one write in flight (StreamOutbox). Heartbeats are written from the sim's
// heartbeat thread, outside any reaction, so a hold keeps the call from
// completing until Stop(): OnDone never races a late Send.
class SimAgent final : public grpc::ClientBidiReactor<v1::AgentMessage, v1::CoordinatorMessage> {
 public:
  SimAgent(std::string name, int slots, std::vector<std::string> labels, int64_t heartbeat_ms,
           Counters* counters)
      : name_(std::move(name)),
        slots_(slots),
        labels_(std::move(labels)),
        heartbeat_ms_(heartbeat_ms),
        counters_(counters) {}

  void Start(v1::AgentService::Stub* stub) {
    stub->async()->Connect(&ctx_, this);
    AddHold();
    StartRead(&in_);
    v1::AgentMessage msg;
    v1::Register* reg = msg.mutable_register_();
    reg->set_name(name_);
    for (const std::string& l : labels_) reg->add_labels(l);
    reg->set_slots(slots_);
    reg->set_version("agent-sim");
    reg->set_protocol_version(kProtocolVersion);
    reg->set_instance_secret(absl::StrCat("agent-sim-instance-", name_));
    reg->mutable_capabilities()->set_free_disk_bytes(int64_t{100} << 30);
    SetExecutorKinds({v1::STAGE_KIND_EXEC}, reg->mutable_capabilities());
    Send(std::move(msg));
    StartCall();
  }

  // Sends a heartbeat when one is due at `now_us`; returns whether it did.
  bool MaybeHeartbeat(int64_t now_us) {
    {
      absl::MutexLock lock(&mu_);
      if (interval_us_ == 0 || now_us < next_beat_us_ || outbox_.closed()) return false;
      next_beat_us_ = now_us + interval_us_;
    }
    v1::AgentMessage msg;
    msg.mutable_heartbeat()->set_sent_us(NowMicros());
    msg.mutable_heartbeat()->set_free_disk_bytes(int64_t{100} << 30);
    Send(std::move(msg));
    counters_->heartbeats.fetch_add(1, std::memory_order_relaxed);
    return true;
  }

  // Ends the stream (half-close) and drops the hold; OnDone follows.
  void Stop() {
    bool writes_done = false;
    {
      absl::MutexLock lock(&mu_);
      if (stopping_) return;
      stopping_ = true;
      writes_done = outbox_.Close(Outbox::CloseMode::kDrain);
    }
    if (writes_done) StartWritesDone();
    ctx_.TryCancel();
    RemoveHold();
  }

  void WaitDone() {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(&done_));
  }

  void OnReadDone(bool ok) override {
    if (!ok) return;
    switch (in_.kind_case()) {
      case v1::CoordinatorMessage::kRegistered: {
        const int64_t interval_ms =
            heartbeat_ms_ > 0 ? heartbeat_ms_ : in_.registered().heartbeat_interval_ms();
        {
          absl::MutexLock lock(&mu_);
          interval_us_ = (interval_ms > 0 ? interval_ms : 3000) * 1000;
          // Spread over the interval, as agents that started at different
          // times would be.
          next_beat_us_ = NowMicros() + std::uniform_int_distribution<int64_t>(
                                            0, interval_us_)(rng_);
        }
        counters_->registered.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      case v1::CoordinatorMessage::kAssignment: {
        const v1::Assignment& as = in_.assignment();
        const int64_t now = NowMicros();
        v1::AgentMessage started;
        started.mutable_started()->set_task_id(as.task_id());
        started.mutable_started()->set_attempt_id(as.attempt_id());
        started.mutable_started()->set_started_us(now);
        Send(std::move(started));
        v1::AgentMessage done;
        v1::AttemptResult* r = done.mutable_result();
        r->set_task_id(as.task_id());
        r->set_attempt_id(as.attempt_id());
        r->set_exit_code(0);
        r->set_outcome(v1::ATTEMPT_OUTCOME_SUCCEEDED);
        r->set_started_us(now);
        r->set_ended_us(NowMicros());
        r->set_log_size(0);
        Send(std::move(done));
        counters_->assignments.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      case v1::CoordinatorMessage::kPace:
        // As the real agent: the next heartbeat keeps its time, the ones
        // after follow the new interval.
        if (heartbeat_ms_ == 0 && in_.pace().heartbeat_interval_ms() > 0) {
          absl::MutexLock lock(&mu_);
          interval_us_ = in_.pace().heartbeat_interval_ms() * 1000;
        }
        break;
      default:
        break;  // acks, cancels, keep-images, drains: nothing to do for a no-op agent
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    Outbox::AfterWrite next;
    {
      absl::MutexLock lock(&mu_);
      next = outbox_.OnWriteDone(ok);
    }
    if (next.end) StartWritesDone();
    if (next.write != nullptr) StartWrite(next.write);
  }

  void OnDone(const grpc::Status& status) override {
    absl::MutexLock lock(&mu_);
    if (!stopping_) {
      std::fprintf(stderr, "agent_sim: %s: stream ended: %s\n", name_.c_str(),
                   status.error_message().c_str());
    }
    counters_->ended.fetch_add(1, std::memory_order_relaxed);
    done_ = true;
  }

 private:
  using Outbox = StreamOutbox<v1::AgentMessage>;

  void Send(v1::AgentMessage msg) {
    const v1::AgentMessage* next = nullptr;
    {
      absl::MutexLock lock(&mu_);
      next = outbox_.Push(std::move(msg));
    }
    if (next != nullptr) StartWrite(next);
  }

  const std::string name_;
  const int slots_;
  const std::vector<std::string> labels_;
  const int64_t heartbeat_ms_;  // 0: the coordinator's interval
  Counters* const counters_;
  grpc::ClientContext ctx_;
  v1::CoordinatorMessage in_;

  absl::Mutex mu_;
  Outbox outbox_ ABSL_GUARDED_BY(mu_);
  int64_t interval_us_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_beat_us_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  std::minstd_rand rng_ ABSL_GUARDED_BY(mu_){std::random_device{}()};
};

std::atomic<bool> g_stop{false};
std::atomic<bool> g_report{false};
void OnSignal(int) { g_stop.store(true); }
void OnReport(int) { g_report.store(true); }

void PrintCounters(const Counters& c, int agents) {
  std::printf(
      "{\"agents\": %d, \"registered\": %lld, \"heartbeats\": %lld, \"assignments\": %lld, "
      "\"ended\": %lld}\n",
      agents, static_cast<long long>(c.registered.load()),
      static_cast<long long>(c.heartbeats.load()), static_cast<long long>(c.assignments.load()),
      static_cast<long long>(c.ended.load()));
  std::fflush(stdout);
}

struct Options {
  std::string coordinator;
  int agents = 0;
  int first = 0;
  std::string prefix = "sim-";
  int slots = 4;
  std::vector<std::string> labels;
  // Diagnostics only (what does each part cost?); a real agent does neither.
  int64_t heartbeat_ms = 0;  // instead of the coordinator's interval
  bool keepalive = true;
};

int Usage(const char* why) {
  std::fprintf(stderr,
               "agent_sim: %s\nusage: agent_sim --coordinator HOST:PORT --agents N [--first I] "
               "[--prefix P] [--slots S] [--label KEY=VALUE]... [--heartbeat-ms MS] "
               "[--keepalive on|off]\n",
               why);
  return 2;
}

// Each connection costs a descriptor (and gRPC a few more for its pollers).
bool RaiseFdLimit(int agents) {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return false;
  const rlim_t want = static_cast<rlim_t>(agents) + 256;
  if (rl.rlim_cur < want && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  if (rl.rlim_cur < want) {
    std::fprintf(stderr,
                 "agent_sim: %d agents need about %llu descriptors but RLIMIT_NOFILE is %llu "
                 "(hard %llu): run more sim processes with fewer agents each, or raise the hard "
                 "limit (ulimit -Hn, LimitNOFILE=)\n",
                 agents, static_cast<unsigned long long>(want),
                 static_cast<unsigned long long>(rl.rlim_cur),
                 static_cast<unsigned long long>(rl.rlim_max));
    return false;
  }
  return true;
}

int Run(const Options& opts) {
  if (!RaiseFdLimit(opts.agents)) return 1;
  Counters counters;
  std::vector<std::unique_ptr<SimAgent>> agents;
  std::vector<std::unique_ptr<v1::AgentService::Stub>> stubs;
  agents.reserve(static_cast<size_t>(opts.agents));
  for (int i = 0; i < opts.agents && !g_stop.load(); ++i) {
    grpc::ChannelArguments args;
    // As the real agent's channel (agent/grpc_coordinator_link.cc), so the
    // coordinator pays for the same keepalive pings.
    if (opts.keepalive) {
      args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 60'000);
      args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5'000);
      args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
      args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    }
    // Channels with equal arguments would share one subchannel, hence one TCP
    // connection; an agent host has its own.
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    stubs.push_back(v1::AgentService::NewStub(
        grpc::CreateCustomChannel(opts.coordinator, grpc::InsecureChannelCredentials(), args)));
    agents.push_back(std::make_unique<SimAgent>(absl::StrCat(opts.prefix, opts.first + i),
                                                opts.slots, opts.labels, opts.heartbeat_ms,
                                                &counters));
    agents.back()->Start(stubs.back().get());
    // Paced a little: a SYN backlog overflow would only add retries.
    if (i % 200 == 199) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  bool announced = false;
  // stdin closing (the parent died) ends the sim too.
  std::thread stdin_watch([] {
    char c;
    while (::read(0, &c, 1) > 0) {
    }
    g_stop.store(true);
  });
  stdin_watch.detach();
  while (!g_stop.load()) {
    const int64_t now = NowMicros();
    for (auto& a : agents) a->MaybeHeartbeat(now);
    if (!announced && counters.registered.load() == opts.agents) {
      std::printf("registered %d\n", opts.agents);
      std::fflush(stdout);
      announced = true;
    }
    if (g_report.exchange(false)) PrintCounters(counters, opts.agents);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  for (auto& a : agents) a->Stop();
  for (auto& a : agents) a->WaitDone();
  PrintCounters(counters, opts.agents);
  return 0;
}

}  // namespace
}  // namespace musafarm::bench

int main(int argc, char** argv) {
  using musafarm::bench::Usage;
  musafarm::bench::Options opts;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return Usage(("missing value after " + flag).c_str());
    const std::string value = argv[++i];
    if (flag == "--coordinator") {
      opts.coordinator = value;
    } else if (flag == "--agents") {
      if (!absl::SimpleAtoi(value, &opts.agents) || opts.agents <= 0) {
        return Usage("--agents must be a positive integer");
      }
    } else if (flag == "--first") {
      if (!absl::SimpleAtoi(value, &opts.first) || opts.first < 0) {
        return Usage("--first must be a non-negative integer");
      }
    } else if (flag == "--slots") {
      if (!absl::SimpleAtoi(value, &opts.slots) || opts.slots <= 0) {
        return Usage("--slots must be a positive integer");
      }
    } else if (flag == "--prefix") {
      opts.prefix = value;
    } else if (flag == "--label") {
      opts.labels.push_back(value);
    } else if (flag == "--heartbeat-ms") {
      if (!absl::SimpleAtoi(value, &opts.heartbeat_ms) || opts.heartbeat_ms < 0) {
        return Usage("--heartbeat-ms must be a non-negative integer");
      }
    } else if (flag == "--keepalive") {
      if (value != "on" && value != "off") return Usage("--keepalive takes on or off");
      opts.keepalive = value == "on";
    } else {
      return Usage(("unknown flag " + flag).c_str());
    }
  }
  if (opts.coordinator.empty() || opts.agents == 0) return Usage("--coordinator and --agents");
  // As the coordinator and agent mains: Debian's Abseil keeps Mutex deadlock
  // detection on, and the heartbeat loop's lock of every agent each turn then
  // spent 70% of a sim's CPU in its lock graph (perf, issue 19): with 10,000
  // agents the sims took a third of a core from the coordinator they measure.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  signal(SIGTERM, musafarm::bench::OnSignal);
  signal(SIGINT, musafarm::bench::OnSignal);
  signal(SIGUSR1, musafarm::bench::OnReport);
  return musafarm::bench::Run(opts);
}
