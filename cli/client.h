#pragma once

#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/limits.h"
#include "common/tls_channel.h"
#include "grpcpp/support/status.h"
#include "nlohmann/json.hpp"

namespace grpc {
class Channel;
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

// -o: tables for people; JSON (one object a line) or YAML (one document each)
// for programs, both the same values (cli/json.h, cli/yaml_output.h).
enum class OutputFormat { kTable, kJson, kYaml };

// Maps the status of a failed RPC to the process exit code.
int ExitCodeForStatus(grpc::StatusCode code);

// What a command writes to and where it connects. Commands never touch
// std::cout/std::cerr directly, so tests pass string streams.
struct CommandEnv {
  std::string coordinator = kDefaultCoordinator;
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
};

// A channel to env.coordinator, secured as env.tls says.
std::shared_ptr<grpc::Channel> NewChannel(const CommandEnv& env);

// Sets the kUnaryDeadline on a unary call's context.
void SetUnaryDeadline(grpc::ClientContext* ctx);

// Prints what went wrong with a call to stderr and returns the exit code, e.g.
// "musafarm: cannot reach coordinator at 127.0.0.1:1: failed to connect ...".
int ReportRpcError(const CommandEnv& env, const grpc::Status& status);

// Prints `msg` as env.output says: one line of JSON, ProtoToJson (cli/json.h),
// the proto3 JSON mapping with defaults included and RFC 3339 times beside the
// *Us fields; or the same values as one YAML document. Not for kTable.
void PrintMessage(const CommandEnv& env, const google::protobuf::Message& msg);
// The same for a document composed with cli/json.h.
void PrintDocument(const CommandEnv& env, const nlohmann::ordered_json& doc);

}  // namespace musafarm::cli
