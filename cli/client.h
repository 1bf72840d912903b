#pragma once

#include <atomic>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/coordinator_targets.h"
#include "common/limits.h"
#include "common/tls_channel.h"
#include "grpcpp/support/status.h"
#include "nlohmann/json.hpp"

namespace grpc {
class Channel;
class ChannelArguments;
class ClientContext;
}  // namespace grpc

namespace google::protobuf {
class Message;
}  // namespace google::protobuf

namespace musafarm::cli {

// Process exit codes of `musafarm`; scripts depend on them.
enum ExitCode : int {
  kExitOk = 0,
  kExitJobFailed = 1,    // the job failed or was cancelled; also any other server error
  kExitUsage = 2,        // bad usage or input: flags, spec, unknown id, wrong state
  kExitUnreachable = 3,  // the coordinator cannot be reached or does not answer
};

inline constexpr char kDefaultCoordinator[] = "127.0.0.1:7070";
// The largest message the CLI accepts: a 4 MiB page of a log or an artifact
// and the fields around it, a job of 10,000 tasks (common/limits.h).
inline constexpr int kMaxReceiveMessageBytes = limits::kMaxReplyBytes;
// Every unary call gets this deadline.
inline constexpr absl::Duration kUnaryDeadline = absl::Seconds(10);
// With several coordinators, how long a call keeps looking for the active one
// (a takeover: the standby's lock wait, then its start).
inline constexpr absl::Duration kFailoverGiveUp = absl::Seconds(30);

// -o: tables for people; JSON (one object a line) or YAML (one document each)
// for programs, both the same values (cli/json.h, cli/yaml_output.h).
enum class OutputFormat { kTable, kJson, kYaml };

// Maps the status of a failed RPC to the process exit code.
int ExitCodeForStatus(grpc::StatusCode code);

// What a command writes to and where it connects. Commands never touch
// std::cout/std::cerr directly, so tests pass string streams.
struct CommandEnv {
  // Where to connect when `targets` is unset (tests set only this).
  std::string coordinator = kDefaultCoordinator;
  // The farm's coordinators (issue 20: --coordinator a:1,b:1); calls go to
  // the active one (CallActive). RunCli sets it; shared, so that every call
  // of one command starts at the coordinator that last answered.
  std::shared_ptr<CoordinatorTargets> targets;
  OutputFormat output = OutputFormat::kTable;
  std::ostream* out = nullptr;  // not owned
  std::ostream* err = nullptr;  // not owned
  bool tty = false;             // stdout is a terminal: live views
  bool color = false;           // colour job and task states (--color, NO_COLOR; cli/color.h)
  absl::TimeZone tz = absl::LocalTimeZone();
  const Clock* clock = RealClock::Get();  // not owned
  // TLS that verifies the coordinator against tls->ca_pem; none: plaintext
  // (--insecure). RunCli sets it from the flags, $MUSAFARM_CA and the config.
  std::optional<ChannelTls> tls;
  // Sent on every call: the API token as `authorization: Bearer ...` (none:
  // empty), and the OS user as `x-musafarm-os-user` (what an --insecure
  // coordinator takes as the user when there is no token).
  std::string token;
  std::string os_user;
  // The command follows a live stream (watch, submit/rerun --watch, logs -f):
  // its channels receive through a fixed HTTP/2 window of kFollowWindowBytes
  // instead of the window gRPC's BDP probe grows (see CreateChannel).
  bool follows = false;
};

// The receive window of a following command's channels (CommandEnv::follows).
inline constexpr int kFollowWindowBytes = 1 << 20;

// The arguments of env's channels (exposed for tests).
grpc::ChannelArguments ChannelArgs(const CommandEnv& env);

// The coordinator calls go to now: the one that last answered, or the first.
std::string CurrentCoordinator(const CommandEnv& env);

// A channel to CurrentCoordinator(env), secured as env.tls says. Channels
// are made once per address and identity and kept for the process's life
// (its calls share one connection); ForgetChannel drops one whose call
// failed, and the next call to `address` makes a new one.
std::shared_ptr<grpc::Channel> NewChannel(const CommandEnv& env);
void ForgetChannel(const CommandEnv& env, const std::string& address);

// Starts gRPC (grpc_init: its threads and pollers, ~1 ms) on a thread of its
// own, for main to call first thing in a command that may connect. That
// thread then waits for the first ConnectAhead and connects its channel, so
// the connection starts the moment the command knows where to, on a thread
// already running: a thread made then took 0.1-0.2 ms to be scheduled on 2
// busy cores (issue 19). Left running at the exit, like the rest of gRPC.
// Call once, before any ConnectAhead.
void StartGrpcAhead();

// Makes NewChannel(env)'s channel and drives its connection (TCP and HTTP/2
// handshakes: someone must poll for them) while the caller goes on with local
// work: submit reads, parses and expands its pipeline meanwhile. gRPC's
// start-up, the channel and the handshakes took ~1.5 ms before the first call
// could leave (issue 19). The work runs on StartGrpcAhead's thread for the
// process's first ConnectAhead, else on a thread of its own. The caller's
// calls find the channel made (or wait on the cache's lock for it) and
// connected or connecting. The work ends when the channel is READY or has
// failed; the destructor stops it and waits for its end. Nothing is sent
// until a call is made.
class ConnectAhead {
 public:
  explicit ConnectAhead(const CommandEnv& env);
  ~ConnectAhead();
  ConnectAhead(const ConnectAhead&) = delete;
  ConnectAhead& operator=(const ConnectAhead&) = delete;

  // Whether StartGrpcAhead's thread took the work (tests).
  bool on_startup_thread() const { return on_startup_thread_; }

 private:
  std::atomic<bool> stop_{false};
  bool on_startup_thread_ = false;
  std::thread thread_;  // when no start-up thread took the work
};

// Whether a call may be sent twice. A call that reached no server, or that a
// standby refused, is always tried again at the next coordinator; one that
// may have reached the active one (a deadline or a reset after it was sent)
// only when it is kIdempotent.
enum class Repeat { kIdempotent, kOnce };

// One unary call at the active coordinator (issue 20): `call` makes it on
// `channel` with `ctx` (a fresh context each try, with the unary deadline),
// and is tried again on the next coordinator as `repeat` and
// common/coordinator_targets.h say. With a single coordinator nothing is
// retried but a standby's pointer to the active one.
grpc::Status CallActiveChannel(
    const CommandEnv& env, Repeat repeat,
    absl::FunctionRef<grpc::Status(const std::shared_ptr<grpc::Channel>& channel,
                                   grpc::ClientContext* ctx)>
        call);

// The same with a stub of `Service`:
//   CallActive<v1::UserService>(env, Repeat::kIdempotent,
//       [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
//         return stub.ListJobs(ctx, req, &resp);
//       });
template <typename Service, typename Call>
grpc::Status CallActive(const CommandEnv& env, Repeat repeat, Call&& call) {
  return CallActiveChannel(
      env, repeat,
      [&call](const std::shared_ptr<grpc::Channel>& channel, grpc::ClientContext* ctx) {
        std::unique_ptr<typename Service::Stub> stub = Service::NewStub(channel);
        return call(*stub, ctx);
      });
}

// Sets the kUnaryDeadline on a unary call's context.
void SetUnaryDeadline(grpc::ClientContext* ctx);

// Prints what went wrong with a call to stderr and returns the exit code, e.g.
// "musafarm: cannot reach coordinator at 127.0.0.1:1: failed to connect ...".
// For a Repeat::kOnce call that may have been done before the connection was
// lost, `check` says what to look at before trying again ("musafarm status
// 7"): it is printed as the way to know.
int ReportRpcError(const CommandEnv& env, const grpc::Status& status,
                   absl::string_view check = "");

// Prints `msg` as env.output says: one line of JSON, ProtoToJson (cli/json.h),
// the proto3 JSON mapping with defaults included and RFC 3339 times beside the
// *Us fields; or the same values as one YAML document. Not for kTable.
void PrintMessage(const CommandEnv& env, const google::protobuf::Message& msg);
// The same for a document composed with cli/json.h.
void PrintDocument(const CommandEnv& env, const nlohmann::ordered_json& doc);

}  // namespace musafarm::cli
