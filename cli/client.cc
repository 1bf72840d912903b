#include "cli/client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "cli/json.h"
#include "grpc/grpc.h"
#include "cli/yaml_output.h"
#include "google/protobuf/message.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "grpcpp/support/client_interceptor.h"

namespace musafarm::cli {

int ExitCodeForStatus(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::OUT_OF_RANGE:
    // Who you are or what your role allows: a human must act, as for bad input.
    case grpc::StatusCode::UNAUTHENTICATED:
    case grpc::StatusCode::PERMISSION_DENIED:
      return kExitUsage;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitUnreachable;
    default:
      // INTERNAL, UNIMPLEMENTED, ...: the command failed, and
      // it is neither the user's input nor the network.
      return kExitJobFailed;
  }
}

namespace {

// Adds the caller's identity to every call's initial metadata: one place for
// unary calls and streams alike.
class IdentityInterceptor final : public grpc::experimental::Interceptor {
 public:
  IdentityInterceptor(const std::string* bearer, const std::string* os_user)
      : bearer_(bearer), os_user_(os_user) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      auto* md = methods->GetSendInitialMetadata();
      if (!bearer_->empty()) md->insert({"authorization", *bearer_});
      if (!os_user_->empty()) md->insert({"x-musafarm-os-user", *os_user_});
    }
    methods->Proceed();
  }

 private:
  const std::string* const bearer_;   // owned by the factory
  const std::string* const os_user_;
};

class IdentityInterceptorFactory final
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  IdentityInterceptorFactory(const std::string& token, std::string os_user)
      : bearer_(token.empty() ? "" : "Bearer " + token), os_user_(std::move(os_user)) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new IdentityInterceptor(&bearer_, &os_user_);
  }

 private:
  const std::string bearer_;
  const std::string os_user_;
};

}  // namespace

std::string CurrentCoordinator(const CommandEnv& env) {
  return env.targets != nullptr ? env.targets->Current() : env.coordinator;
}

namespace {

// The gRPC target of `address`: an IP literal goes to gRPC's ipv4:/ipv6:
// resolver, which parses it, instead of the DNS resolver, which hands it to
// another thread and probes the route with a UDP socket before the connect
// (issue 19: CLI start-up). Names still go through DNS. Either way the
// channel's authority, and so the name TLS checks, is `address` itself.
std::string GrpcTarget(const std::string& address) {
  std::string host;
  int family = AF_INET;
  if (absl::StartsWith(address, "[")) {
    const size_t close = address.find(']');
    if (close == std::string::npos) return address;
    host = address.substr(1, close - 1);
    family = AF_INET6;
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos) return address;
    host = address.substr(0, colon);
  }
  unsigned char buf[sizeof(in6_addr)];
  if (inet_pton(family, host.c_str(), buf) != 1) return address;
  return absl::StrCat(family == AF_INET ? "ipv4:" : "ipv6:", address);
}

}  // namespace

grpc::ChannelArguments ChannelArgs(const CommandEnv& env) {
  grpc::ChannelArguments args;
  // A watch can sit idle for as long as a task runs; keepalive notices a
  // coordinator host that vanished without closing the connection, and the
  // watch then resumes. The coordinator permits pings every 5 s.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  // GetLog and GetArtifact answer with up to 4 MiB of data a call, which with
  // the other fields is just over gRPC's default limit of 4 MiB a message.
  args.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  if (env.follows) {
    // A watcher's bytes queue between the coordinator's completed writes and
    // the user's terminal: in what this window lets the coordinator send
    // ahead. gRPC's BDP probe grows it with the rate, far past what a
    // loopback or LAN round trip needs, so a watcher that the coordinator
    // counts as keeping up (WatchHub::kPace) held a deeper queue here, and the
    // line delay grew with it (issue 19: 4 tasks printing at once, p50 about
    // halved with this, the stored rate unchanged; BENCHMARKS.md). Downloads
    // (GetLog, GetArtifact) keep the probe: over a WAN a fixed 1 MiB would
    // cap them at 1 MiB per round trip.
    args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
    args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, kFollowWindowBytes);
  }
  return args;
}

namespace {

std::shared_ptr<grpc::Channel> CreateChannel(const CommandEnv& env, const std::string& address) {
  grpc::ChannelArguments args = ChannelArgs(env);
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> identity;
  identity.push_back(std::make_unique<IdentityInterceptorFactory>(env.token, env.os_user));
  // One channel per address: TLS checks each coordinator's certificate
  // against the host of the address it was reached at, so one farm CA serves
  // them all.
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      GrpcTarget(address), MakeChannelCredentials(env.tls), args, std::move(identity));
}

// The channels this process made, one per address and identity, kept for its
// life: the calls of one command (submit --watch: Submit, then WatchJob) share
// one connection, and the process never pays a channel's teardown (main exits
// without it). A channel whose call failed is dropped, so that the next try
// starts a fresh connection, as a new process would, rather than waiting out
// gRPC's reconnect backoff on the old one.
class ChannelCache {
 public:
  std::shared_ptr<grpc::Channel> Get(const CommandEnv& env, const std::string& address) {
    const std::string key = Key(env, address);
    absl::MutexLock lock(&mu_);
    std::shared_ptr<grpc::Channel>& channel = channels_[key];
    if (channel == nullptr) channel = CreateChannel(env, address);
    return channel;
  }
  void Forget(const CommandEnv& env, const std::string& address) {
    const std::string key = Key(env, address);
    std::shared_ptr<grpc::Channel> dropped;  // destroyed outside the lock
    absl::MutexLock lock(&mu_);
    auto it = channels_.find(key);
    if (it == channels_.end()) return;
    dropped = std::move(it->second);
    channels_.erase(it);
  }

 private:
  // Everything a channel is made of: the address, the trust and the identity
  // its interceptor sends.
  static std::string Key(const CommandEnv& env, const std::string& address) {
    return absl::StrCat(address.size(), ":", address, env.tls.has_value() ? "tls:" : "plain:",
                        env.tls.has_value() ? env.tls->ca_pem.size() : 0, ":",
                        env.tls.has_value() ? env.tls->ca_pem : "", env.token.size(), ":",
                        env.token, env.os_user, env.follows ? ":follows" : "");
  }

  absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<grpc::Channel>> channels_ ABSL_GUARDED_BY(mu_);
};

ChannelCache& Channels() {
  static ChannelCache* const cache = new ChannelCache();  // never destroyed: see above
  return *cache;
}

std::shared_ptr<grpc::Channel> NewChannelTo(const CommandEnv& env, const std::string& address) {
  return Channels().Get(env, address);
}

}  // namespace

std::shared_ptr<grpc::Channel> NewChannel(const CommandEnv& env) {
  return NewChannelTo(env, CurrentCoordinator(env));
}

void ForgetChannel(const CommandEnv& env, const std::string& address) {
  Channels().Forget(env, address);
}

namespace {

// Connects NewChannel(env)'s channel: until READY, a failure or `stop`.
void DriveConnection(const CommandEnv& env, const std::atomic<bool>& stop) {
  std::shared_ptr<grpc::Channel> channel = NewChannel(env);
  grpc_connectivity_state state = channel->GetState(/*try_to_connect=*/true);
  // Polls in short slices, so that the destructor's stop is seen soon when
  // the connection takes long (a host that drops packets).
  while ((state == GRPC_CHANNEL_IDLE || state == GRPC_CHANNEL_CONNECTING) && !stop) {
    channel->WaitForStateChange(state,
                                std::chrono::system_clock::now() + std::chrono::milliseconds(5));
    state = channel->GetState(/*try_to_connect=*/false);
  }
}

// What the first ConnectAhead hands StartGrpcAhead's thread.
struct StartupHandOff {
  absl::Mutex mu;
  std::optional<CommandEnv> env ABSL_GUARDED_BY(mu);  // set once, by the first ConnectAhead
  const std::atomic<bool>* stop ABSL_GUARDED_BY(mu) = nullptr;
  absl::Notification done;  // the connection's work ended
};

// Set by StartGrpcAhead, never destroyed (the thread may outlive main).
std::atomic<StartupHandOff*> startup_hand_off{nullptr};

}  // namespace

void StartGrpcAhead() {
  auto* hand_off = new StartupHandOff();
  startup_hand_off.store(hand_off);
  std::thread([hand_off] {
    grpc_init();
    const std::atomic<bool>* stop = nullptr;
    std::optional<CommandEnv> env;
    {
      absl::MutexLock lock(&hand_off->mu);
      hand_off->mu.Await(absl::Condition(
          +[](StartupHandOff* h) {
            h->mu.AssertHeld();
            return h->env.has_value();
          },
          hand_off));
      env = hand_off->env;
      stop = hand_off->stop;
    }
    DriveConnection(*env, *stop);
    hand_off->done.Notify();
  }).detach();
}

ConnectAhead::ConnectAhead(const CommandEnv& env) {
  if (StartupHandOff* hand_off = startup_hand_off.load(); hand_off != nullptr) {
    absl::MutexLock lock(&hand_off->mu);
    if (!hand_off->env.has_value()) {
      hand_off->stop = &stop_;  // read until `done`, which the destructor waits for
      hand_off->env = env;
      on_startup_thread_ = true;
      return;
    }
  }
  thread_ = std::thread([this, env] { DriveConnection(env, stop_); });
}

ConnectAhead::~ConnectAhead() {
  stop_ = true;
  if (on_startup_thread_) {
    startup_hand_off.load()->done.WaitForNotification();
  } else {
    thread_.join();
  }
}

grpc::Status CallActiveChannel(
    const CommandEnv& env, Repeat repeat,
    absl::FunctionRef<grpc::Status(const std::shared_ptr<grpc::Channel>& channel,
                                   grpc::ClientContext* ctx)>
        call) {
  std::optional<CoordinatorTargets> own;
  CoordinatorTargets* targets = env.targets.get();
  if (targets == nullptr) targets = &own.emplace(std::vector<std::string>{env.coordinator});
  FailoverPolicy policy;
  policy.idempotent = repeat == Repeat::kIdempotent;
  policy.prepare = SetUnaryDeadline;
  // One coordinator: fail as before, at once (a standby's pointer to the
  // active one is still followed). Several: ride out a takeover.
  policy.give_up_after = targets->addresses().size() > 1 ? kFailoverGiveUp : absl::ZeroDuration();
  return CallActive(*targets, policy, [&](const std::string& address, grpc::ClientContext* ctx) {
    grpc::Status status = call(NewChannelTo(env, address), ctx);
    if (!status.ok()) ForgetChannel(env, address);
    return status;
  });
}

void SetUnaryDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoSeconds(kUnaryDeadline));
}

namespace {

// Whether an UNAVAILABLE from a TLS channel is the handshake refusing the
// coordinator's certificate (another CA, a name it was not made for, or a
// plaintext coordinator) rather than the network: gRPC reports both as
// UNAVAILABLE, and only the text tells them apart.
bool IsCertificateFailure(const CommandEnv& env, const grpc::Status& status) {
  if (!env.tls.has_value() || status.error_code() != grpc::StatusCode::UNAVAILABLE) return false;
  const std::string& m = status.error_message();
  for (const char* sign :
       {"certificate verify failed", "CERTIFICATE_VERIFY_FAILED", "is not in peer certificate",
        "andshake failed", "wrong version number", "WRONG_VERSION_NUMBER"}) {
    if (absl::StrContains(m, sign)) return true;
  }
  return false;
}

}  // namespace

int ReportRpcError(const CommandEnv& env, const grpc::Status& status, absl::string_view check) {
  std::string msg = status.error_message();
  if (msg.empty()) {
    msg = absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
  }
  const std::string coordinator = CurrentCoordinator(env);
  if (!check.empty() && absl::StrContains(msg, kMayHaveBeenDoneNote)) {
    *env.err << "musafarm: " << msg << "; before trying again, check whether it was done: " << check
             << "\n";
    return ExitCodeForStatus(status.error_code());
  }
  if (IsCertificateFailure(env, status)) {
    // Not a network problem that a retry fixes: exit 1, with what to check.
    *env.err << "musafarm: cannot verify the coordinator's certificate at " << coordinator
             << " (is --ca FILE the farm's ca.crt, and the address a name or IP the "
                "certificate was made for? a coordinator run with --insecure needs --insecure): "
             << msg << "\n";
    return kExitJobFailed;
  }
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      // Several coordinators tried: the message says what each answered.
      if (absl::StartsWith(msg, "no active coordinator")) {
        *env.err << "musafarm: cannot reach the coordinators: " << msg << "\n";
        break;
      }
      *env.err << "musafarm: cannot reach coordinator at " << coordinator << ": " << msg << "\n";
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      *env.err << "musafarm: coordinator at " << coordinator << " did not answer in time: " << msg
               << "\n";
      break;
    default:
      *env.err << "musafarm: " << msg << "\n";
  }
  return ExitCodeForStatus(status.error_code());
}

void PrintMessage(const CommandEnv& env, const google::protobuf::Message& msg) {
  const Json json = ProtoToJson(msg);
  // Serializing a well-formed message to JSON cannot fail short of a bug.
  if (json.is_discarded()) {
    *env.err << "musafarm: cannot encode " << msg.GetTypeName() << " as JSON\n";
    return;
  }
  PrintDocument(env, json);
}

void PrintDocument(const CommandEnv& env, const Json& doc) {
  if (env.output == OutputFormat::kYaml) {
    *env.out << JsonToYaml(doc);
  } else {
    *env.out << DumpJson(doc) << "\n";
  }
}

}  // namespace musafarm::cli
