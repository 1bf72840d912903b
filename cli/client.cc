#include "cli/client.h"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <ostream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/message.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/client_context.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"

namespace musafarm::cli {
namespace {

// Reads a whole file; NotFound when it does not exist.
absl::StatusOr<std::string> ReadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int e = errno;
    std::string why = std::strerror(e);
    if (e == ENOENT) return absl::NotFoundError(absl::StrCat(path, ": ", why));
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", why));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::string_view Unquote(absl::string_view v) {
  if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
    v.remove_prefix(1);
    v.remove_suffix(1);
  }
  return v;
}

}  // namespace

std::optional<std::string> ParseConfigCoordinator(absl::string_view content) {
  for (absl::string_view line : absl::StrSplit(content, '\n')) {
    // A '#' at the start or after a blank starts a comment.
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
        line = line.substr(0, i);
        break;
      }
    }
    line = absl::StripAsciiWhitespace(line);
    constexpr absl::string_view kKey = "coordinator:";
    if (!absl::ConsumePrefix(&line, kKey)) continue;
    absl::string_view value = Unquote(absl::StripAsciiWhitespace(line));
    if (value.empty()) return std::nullopt;
    return std::string(value);
  }
  return std::nullopt;
}

absl::StatusOr<std::string> ResolveCoordinator(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv(kCoordinatorEnv); env != nullptr && *env != '\0') {
    return std::string(env);
  }
  std::string path;
  bool explicit_path = false;
  if (const char* cfg = std::getenv(kConfigEnv); cfg != nullptr && *cfg != '\0') {
    path = cfg;
    explicit_path = true;
  } else if (const char* home = std::getenv("HOME"); home != nullptr && *home != '\0') {
    path = absl::StrCat(home, "/.config/musafarm/config.yaml");
  }
  if (!path.empty()) {
    absl::StatusOr<std::string> content = ReadConfigFile(path);
    if (content.ok()) {
      if (std::optional<std::string> addr = ParseConfigCoordinator(*content)) return *addr;
    } else if (explicit_path) {
      return absl::InvalidArgumentError(absl::StrCat("cannot read config file ($", kConfigEnv,
                                                     "): ", content.status().message()));
    } else if (!absl::IsNotFound(content.status())) {
      return absl::InvalidArgumentError(
          absl::StrCat("cannot read config file: ", content.status().message()));
    }
  }
  return std::string(kDefaultCoordinator);
}

int ExitCodeForStatus(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return kExitOk;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::NOT_FOUND:
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ALREADY_EXISTS:
    case grpc::StatusCode::OUT_OF_RANGE:
      return kExitUsage;
    case grpc::StatusCode::UNAVAILABLE:
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return kExitUnreachable;
    default:
      // INTERNAL, PERMISSION_DENIED, UNIMPLEMENTED, ...: the command failed, and
      // it is neither the user's input nor the network.
      return kExitJobFailed;
  }
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& address) {
  grpc::ChannelArguments args;
  // A watch can sit idle for as long as a task runs; keepalive notices a
  // coordinator host that vanished without closing the connection, and the
  // watch then resumes. Same values as the agents' channel; the coordinator
  // permits pings every 10 s.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 20'000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  // GetLog and GetArtifact answer with up to 4 MiB of data a call, which with
  // the other fields is just over gRPC's default limit of 4 MiB a message.
  args.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
}

void SetUnaryDeadline(grpc::ClientContext* ctx) {
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoSeconds(kUnaryDeadline));
}

int ReportRpcError(const CommandEnv& env, const grpc::Status& status) {
  std::string msg = status.error_message();
  if (msg.empty()) {
    msg = absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code()));
  }
  switch (status.error_code()) {
    case grpc::StatusCode::UNAVAILABLE:
      *env.err << "musafarm: cannot reach coordinator at " << env.coordinator << ": " << msg
               << "\n";
      break;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      *env.err << "musafarm: coordinator at " << env.coordinator
               << " did not answer in time: " << msg << "\n";
      break;
    default:
      *env.err << "musafarm: " << msg << "\n";
  }
  return ExitCodeForStatus(status.error_code());
}

void PrintJson(const CommandEnv& env, const google::protobuf::Message& msg) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.always_print_primitive_fields = true;
  std::string json;
  // Serializing a well-formed message to JSON cannot fail short of a bug.
  auto s = google::protobuf::util::MessageToJsonString(msg, &json, opts);
  if (!s.ok()) {
    *env.err << "musafarm: cannot encode " << msg.GetTypeName() << " as JSON: " << s.ToString()
             << "\n";
    return;
  }
  *env.out << json << "\n";
}

}  // namespace musafarm::cli
