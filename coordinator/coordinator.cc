#include "coordinator/coordinator.h"

#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "common/atomic_file.h"
#include "common/logging.h"
#include "coordinator/server.h"

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

Coordinator::Coordinator(CoordinatorOptions options) : options_(std::move(options)) {}

Coordinator::~Coordinator() { Shutdown(); }

absl::Status Coordinator::Start() {
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
  logs_ = OpenFileLogStore(absl::StrCat(options_.data_dir, "/logs"));
  core_ = std::make_unique<Core>(store_.get(), logs_.get(), RealClock::Get(), options_.core);
  if (absl::Status s = core_->Recover(); !s.ok()) return s;

  server_ = std::make_unique<Server>(&loop_, core_.get(), core_.get());
  loop_.Start();
  absl::StatusOr<int> port = server_->Start(options_.listen);
  if (!port.ok()) {
    loop_.Stop();
    return port.status();
  }
  port_ = *port;
  ScheduleTick(&loop_, core_.get());
  if (!options_.port_file.empty()) {
    // Atomically, so a reader never sees half a number.
    if (absl::Status s = WriteFileAtomically(options_.port_file, absl::StrCat(port_, "\n"));
        !s.ok()) {
      return absl::InternalError(absl::StrCat("cannot write port file: ", s.message()));
    }
  }
  log->info("listening on port {} (data in {})", port_, options_.data_dir);
  return absl::OkStatus();
}

void Coordinator::Shutdown() {
  if (shut_down_ || core_ == nullptr) return;
  shut_down_ = true;
  if (port_ != 0) {
    // Finish every stream from the core, then let gRPC drain them.
    loop_.RunSync([this] { core_->Shutdown(); });
    server_->Shutdown(absl::Seconds(2));
  }
  loop_.Stop();
  GetLogger("coordinator")->info("stopped");
}

}  // namespace musafarm::coordinator
