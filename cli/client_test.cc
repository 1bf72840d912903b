#include "cli/client.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "grpcpp/grpcpp.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {
namespace {

TEST(ExitCodeForStatusTest, MapsCodesToExitCodes) {
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::OK), 0);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::INVALID_ARGUMENT), 2);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::NOT_FOUND), 2);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::FAILED_PRECONDITION), 2);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::UNAVAILABLE), 3);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::DEADLINE_EXCEEDED), 3);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::INTERNAL), 1);
  // Issue 11: a refused identity or role is for the user to fix, like bad input.
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::PERMISSION_DENIED), 2);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::UNAUTHENTICATED), 2);
}

TEST(ReportRpcErrorTest, SaysWhatIsWrong) {
  std::ostringstream out, err;
  CommandEnv env;
  env.coordinator = "127.0.0.1:1";
  env.out = &out;
  env.err = &err;
  EXPECT_EQ(ReportRpcError(env, grpc::Status(grpc::StatusCode::UNAVAILABLE, "refused")), 3);
  EXPECT_EQ(err.str(), "musafarm: cannot reach coordinator at 127.0.0.1:1: refused\n");
  err.str("");
  EXPECT_EQ(ReportRpcError(env, grpc::Status(grpc::StatusCode::NOT_FOUND, "no job 9")), 2);
  EXPECT_EQ(err.str(), "musafarm: no job 9\n");
  EXPECT_EQ(out.str(), "");
}

TEST(ReportRpcErrorTest, ACallThatMayHaveBeenDoneSaysWhatToCheck) {
  std::ostringstream out, err;
  CommandEnv env;
  env.out = &out;
  env.err = &err;
  const grpc::Status maybe(grpc::StatusCode::UNAVAILABLE,
                           absl::StrCat("Socket closed (", kMayHaveBeenDoneNote,
                                        ": it was sent to 127.0.0.1:7 before the connection was "
                                        "lost)"));
  EXPECT_EQ(ReportRpcError(env, maybe, "musafarm status 42"), 3);
  EXPECT_EQ(err.str(),
            "musafarm: Socket closed (it may have been done: it was sent to 127.0.0.1:7 before "
            "the connection was lost); before trying again, check whether it was done: "
            "musafarm status 42\n");
}

// A coordinator on loopback answering ListJobs: the active one with a job,
// a standby with the wire contract's refusal naming `active`.
class TinyCoordinator final : public v1::UserService::Service {
 public:
  explicit TinyCoordinator(std::string active_hint) : hint_(std::move(active_hint)) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(this);
    server_ = b.BuildAndStart();
  }
  ~TinyCoordinator() override { server_->Shutdown(); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  std::atomic<int> calls{0};

  grpc::Status ListJobs(grpc::ServerContext* ctx, const v1::ListJobsRequest*,
                        v1::ListJobsResponse* resp) override {
    ++calls;
    if (!hint_.empty()) {
      ctx->AddTrailingMetadata(kActiveCoordinatorMetadata, hint_);
      return {grpc::StatusCode::UNAVAILABLE,
              "standby coordinator; the active coordinator is at " + hint_};
    }
    resp->add_jobs()->set_id("7");
    return grpc::Status::OK;
  }

 private:
  const std::string hint_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// Issue 19: a following command's channel receives through a fixed 1 MiB
// HTTP/2 window, not the one gRPC's BDP probe grows; other commands keep the
// probe (downloads over a WAN need the window it grows).
TEST(ChannelArgsTest, AFollowingCommandGetsAFixedReceiveWindow) {
  auto find = [](const CommandEnv& env, absl::string_view key) -> std::optional<int> {
    grpc::ChannelArguments args = ChannelArgs(env);
    const grpc_channel_args c = args.c_channel_args();
    for (size_t i = 0; i < c.num_args; ++i) {
      if (key == c.args[i].key && c.args[i].type == GRPC_ARG_INTEGER) return c.args[i].value.integer;
    }
    return std::nullopt;
  };
  CommandEnv env;
  EXPECT_EQ(find(env, GRPC_ARG_HTTP2_BDP_PROBE), std::nullopt);
  EXPECT_EQ(find(env, GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES), std::nullopt);
  env.follows = true;
  EXPECT_EQ(find(env, GRPC_ARG_HTTP2_BDP_PROBE), 0);
  EXPECT_EQ(find(env, GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES), kFollowWindowBytes);
  EXPECT_EQ(kFollowWindowBytes, 1 << 20);
}

// NewChannel(env)'s state once it is READY, or after 20 s.
grpc_connectivity_state WaitUntilReady(const CommandEnv& env) {
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  grpc_connectivity_state state = GRPC_CHANNEL_IDLE;
  while ((state = NewChannel(env)->GetState(false)) != GRPC_CHANNEL_READY &&
         absl::Now() < deadline) {
    NewChannel(env)->WaitForStateChange(state, std::chrono::system_clock::now() +
                                                   std::chrono::milliseconds(100));
  }
  return state;
}

// Issue 19: ConnectAhead leaves the command's channel connected (READY)
// before any call is made on it; a channel only made stays IDLE until its
// first call. The channel is the one NewChannel gives (the cache's).
TEST(ConnectAheadTest, TheChannelConnectsBeforeAnyCall) {
  TinyCoordinator coordinator("");
  CommandEnv env;
  env.coordinator = coordinator.address();
  env.os_user = "connect-ahead";  // a cache key no other test uses
  CommandEnv idle = env;
  idle.os_user = "made-only";
  EXPECT_EQ(NewChannel(idle)->GetState(false), GRPC_CHANNEL_IDLE);

  ConnectAhead connecting(env);
  EXPECT_EQ(WaitUntilReady(env), GRPC_CHANNEL_READY);
  EXPECT_EQ(coordinator.calls, 0);
  EXPECT_EQ(NewChannel(idle)->GetState(false), GRPC_CHANNEL_IDLE);
}

// Issue 19: main's start-up thread (StartGrpcAhead) connects the first
// ConnectAhead's channel, with no thread made for it; a later one makes its
// own. Both leave their channel READY.
TEST(ConnectAheadTest, TheStartUpThreadConnectsTheFirstOnly) {
  TinyCoordinator coordinator("");
  StartGrpcAhead();
  CommandEnv env;
  env.coordinator = coordinator.address();
  env.os_user = "start-up thread";  // cache keys no other test uses
  CommandEnv later = env;
  later.os_user = "start-up thread, later";
  {
    ConnectAhead first(env);
    EXPECT_TRUE(first.on_startup_thread());
    EXPECT_EQ(WaitUntilReady(env), GRPC_CHANNEL_READY);
  }
  ConnectAhead second(later);
  EXPECT_FALSE(second.on_startup_thread());
  EXPECT_EQ(WaitUntilReady(later), GRPC_CHANNEL_READY);
  EXPECT_EQ(coordinator.calls, 0);
}

TEST(CallActiveTest, ACallAStandbyRefusesGoesToTheActiveItNames) {
  TinyCoordinator active("");
  TinyCoordinator standby(active.address());
  std::ostringstream out, err;
  CommandEnv env;
  env.out = &out;
  env.err = &err;
  env.targets = std::make_shared<CoordinatorTargets>(
      std::vector<std::string>{standby.address(), active.address()});
  v1::ListJobsResponse resp;
  grpc::Status s = CallActive<v1::UserService>(
      env, Repeat::kOnce, [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
        return stub.ListJobs(ctx, v1::ListJobsRequest(), &resp);
      });
  ASSERT_TRUE(s.ok()) << s.error_message();
  ASSERT_EQ(resp.jobs_size(), 1);
  EXPECT_EQ(standby.calls, 1);
  EXPECT_EQ(active.calls, 1);
  // The next call of the command starts at the active one.
  EXPECT_EQ(CurrentCoordinator(env), active.address());
}

}  // namespace
}  // namespace musafarm::cli
