#include "coordinator/server.h"

#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "coordinator/agent_service.h"
#include "coordinator/user_service.h"
#include "grpcpp/grpcpp.h"

namespace musafarm::coordinator {
namespace {
constexpr absl::Duration kTickInterval = absl::Milliseconds(500);

void ScheduleTick(EventLoop* loop, Core* core) {
  loop->PostAfter(kTickInterval, [loop, core] {
    core->Tick();
    ScheduleTick(loop, core);
  });
}
}  // namespace

Server::Server(ServerOptions options) : options_(std::move(options)) {}

Server::~Server() { Shutdown(); }

absl::Status Server::Start() {
  auto log = GetLogger("coordinator");
  std::error_code ec;
  std::filesystem::create_directories(options_.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data dir '", options_.data_dir, "': ", ec.message()));
  }
  absl::StatusOr<std::unique_ptr<Store>> store =
      OpenSqliteStore(absl::StrCat(options_.data_dir, "/musafarm.db"));
  if (!store.ok()) return store.status();
  store_ = *std::move(store);
  logs_ = std::make_unique<LogStore>(absl::StrCat(options_.data_dir, "/logs"));
  core_ = std::make_unique<Core>(store_.get(), logs_.get(), RealClock::Get(), options_.core);
  if (absl::Status s = core_->Recover(); !s.ok()) return s;

  agent_service_ = std::make_unique<AgentServiceImpl>(&loop_, core_.get());
  user_service_ = std::make_unique<UserServiceImpl>(&loop_, core_.get());
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, grpc::InsecureServerCredentials(), &port_);
  builder.RegisterService(agent_service_.get());
  builder.RegisterService(user_service_.get());
  // Agents ping every 10 s even when idle; without this the server counts
  // those pings as abuse (5 min default) and sends GOAWAY. Half their period,
  // so timer jitter never makes a ping look early.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 5'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 20'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10'000);
  builder.SetMaxReceiveMessageSize(16 << 20);
  loop_.Start();
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ == 0) {
    loop_.Stop();
    return absl::UnavailableError(
        absl::StrCat("cannot listen on '", options_.listen, "' (address in use or malformed?)"));
  }
  ScheduleTick(&loop_, core_.get());
  if (!options_.port_file.empty()) {
    // Written to a temporary name and renamed, so a reader never sees half a number.
    const std::string tmp = options_.port_file + ".tmp";
    {
      std::ofstream out(tmp);
      out << port_ << "\n";
      if (!out) return absl::InternalError(absl::StrCat("cannot write port file ", tmp));
    }
    std::filesystem::rename(tmp, options_.port_file, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot write port file: ", ec.message()));
  }
  log->info("listening on port {} (data in {})", port_, options_.data_dir);
  return absl::OkStatus();
}

void Server::Shutdown() {
  if (shut_down_ || core_ == nullptr) return;
  shut_down_ = true;
  if (server_ != nullptr) {
    // Finish every stream from the core, then let gRPC drain them.
    loop_.RunSync([this] { core_->Shutdown(); });
    server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  }
  loop_.Stop();
  GetLogger("coordinator")->info("stopped");
}

}  // namespace musafarm::coordinator
