#include "common/coordinator_targets.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm {
namespace {

using ::testing::HasSubstr;

// A tiny coordinator on loopback: active (answers WhoAmI with its name) or
// standby (refuses every call as the wire contract says). Counts calls.
class FakeCoordinator final : public v1::UserService::CallbackService {
 public:
  explicit FakeCoordinator(std::string name) : name_(std::move(name)) {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(this);
    server_ = builder.BuildAndStart();
  }
  ~FakeCoordinator() override { Stop(); }
  void Stop() {
    if (server_ != nullptr) server_->Shutdown();
    server_.reset();
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  // Standby naming `active` ("": no active one known); "-" makes it active.
  void SetStandby(std::string active) {
    absl::MutexLock lock(&mu_);
    standby_ = true;
    active_ = std::move(active);
  }
  int calls() const { return calls_.load(); }

  grpc::ServerUnaryReactor* WhoAmI(grpc::CallbackServerContext* ctx, const v1::WhoAmIRequest*,
                                   v1::WhoAmIResponse* resp) override {
    ++calls_;
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    absl::MutexLock lock(&mu_);
    if (standby_) {
      if (!active_.empty()) ctx->AddTrailingMetadata(kActiveCoordinatorMetadata, active_);
      r->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                             active_.empty()
                                 ? "standby coordinator; no coordinator is active"
                                 : "standby coordinator; the active coordinator is at " + active_));
    } else {
      resp->set_user(name_);
      r->Finish(grpc::Status::OK);
    }
    return r;
  }

 private:
  const std::string name_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
  std::atomic<int> calls_{0};
  absl::Mutex mu_;
  bool standby_ ABSL_GUARDED_BY(mu_) = false;
  std::string active_ ABSL_GUARDED_BY(mu_);
};

// A loopback port that refuses connections: bound (so nobody else takes it
// while the test runs) but not listening.
class DeadPort {
 public:
  DeadPort() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
  }
  ~DeadPort() { close(fd_); }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

FailoverPolicy FastPolicy(std::vector<absl::Duration>* pauses) {
  FailoverPolicy p;
  p.give_up_after = absl::Seconds(2);
  p.prepare = [](grpc::ClientContext* ctx) {
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  };
  p.sleep = [pauses](absl::Duration d) { pauses->push_back(d); };
  return p;
}

// Calls WhoAmI at the active coordinator; returns who answered.
grpc::Status WhoAmI(CoordinatorTargets& targets, const FailoverPolicy& policy, std::string* who,
                    std::vector<std::string>* addresses = nullptr) {
  return CallActive(targets, policy, [&](const std::string& address, grpc::ClientContext* ctx) {
    if (addresses != nullptr) addresses->push_back(address);
    auto stub = v1::UserService::NewStub(
        grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
    v1::WhoAmIResponse resp;
    grpc::Status s = stub->WhoAmI(ctx, v1::WhoAmIRequest(), &resp);
    *who = resp.user();
    return s;
  });
}

TEST(CoordinatorTargetsTest, FollowsTheStandbysHintStraightToTheActive) {
  FakeCoordinator active("active"), standby("standby"), other("other");
  standby.SetStandby(active.address());
  other.SetStandby(active.address());
  // The active one is last in the list; the standby's hint skips `other`.
  CoordinatorTargets targets({standby.address(), other.address(), active.address()});
  std::vector<absl::Duration> pauses;
  std::string who;
  std::vector<std::string> tried;
  grpc::Status s = WhoAmI(targets, FastPolicy(&pauses), &who, &tried);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(who, "active");
  EXPECT_THAT(tried, ::testing::ElementsAre(standby.address(), active.address()));
  EXPECT_EQ(other.calls(), 0);
  EXPECT_TRUE(pauses.empty());
  // The one that answered is tried first next time: no more standby calls.
  EXPECT_EQ(targets.Current(), active.address());
  ASSERT_TRUE(WhoAmI(targets, FastPolicy(&pauses), &who).ok());
  EXPECT_EQ(standby.calls(), 1);
}

TEST(CoordinatorTargetsTest, AnUnreachableAddressIsSkippedForTheNext) {
  FakeCoordinator active("active");
  DeadPort dead_port;
  const std::string dead = dead_port.address();
  CoordinatorTargets targets({dead, active.address()});
  std::vector<absl::Duration> pauses;
  std::string who;
  grpc::Status s = WhoAmI(targets, FastPolicy(&pauses), &who);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(who, "active");
  EXPECT_TRUE(pauses.empty());
}

TEST(CoordinatorTargetsTest, WhenAllFailItPausesWithJitterAndSaysWhatItTried) {
  FakeCoordinator standby("standby");
  standby.SetStandby("");  // an election in progress: nobody active
  DeadPort dead_port;
  const std::string dead = dead_port.address();
  CoordinatorTargets targets({standby.address(), dead});
  std::vector<absl::Duration> pauses;
  FailoverPolicy policy = FastPolicy(&pauses);
  policy.give_up_after = absl::Milliseconds(300);
  std::string who;
  grpc::Status s = WhoAmI(targets, policy, &who);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_THAT(s.error_message(), HasSubstr("no active coordinator answered"));
  EXPECT_THAT(s.error_message(),
              HasSubstr(standby.address() + ": standby, no active coordinator yet"));
  EXPECT_THAT(s.error_message(), HasSubstr(dead + ": "));
  // Paused between rounds, never longer than the policy's ceiling.
  ASSERT_FALSE(pauses.empty());
  for (absl::Duration d : pauses) EXPECT_LE(d, policy.backoff_max);
  EXPECT_GE(standby.calls(), 2);
}

TEST(CoordinatorTargetsTest, AStandbyThatBecomesActiveIsFoundOnALaterRound) {
  FakeCoordinator a("a");
  a.SetStandby("");
  CoordinatorTargets targets({a.address()});
  std::vector<absl::Duration> pauses;
  FailoverPolicy policy = FastPolicy(&pauses);
  // The election ends during the first pause.
  FakeCoordinator promoted("promoted");
  policy.sleep = [&](absl::Duration d) {
    pauses.push_back(d);
    a.SetStandby(promoted.address());
  };
  std::string who;
  grpc::Status s = WhoAmI(targets, policy, &who);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(who, "promoted");
  EXPECT_EQ(pauses.size(), 1u);
}

TEST(CoordinatorTargetsTest, ACallThatMayHaveReachedTheActiveIsNotRetriedUnlessIdempotent) {
  FakeCoordinator active("active");
  CoordinatorTargets targets({active.address()});
  std::vector<absl::Duration> pauses;
  FailoverPolicy policy = FastPolicy(&pauses);
  policy.idempotent = false;
  int tries = 0;
  grpc::Status s = CallActive(targets, policy, [&](const std::string&, grpc::ClientContext*) {
    ++tries;
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "Socket closed");
  });
  EXPECT_EQ(tries, 1);
  EXPECT_THAT(s.error_message(), HasSubstr(kMayHaveBeenDoneNote));
  EXPECT_THAT(s.error_message(), HasSubstr("sent to " + active.address()));

  policy.idempotent = true;
  tries = 0;
  s = CallActive(targets, policy, [&](const std::string&, grpc::ClientContext*) {
    return ++tries < 3 ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "Deadline Exceeded")
                       : grpc::Status::OK;
  });
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(tries, 3);
}

TEST(CoordinatorTargetsTest, AServersOwnErrorIsAnAnswer) {
  CoordinatorTargets targets({"127.0.0.1:1", "127.0.0.1:2"});
  std::vector<absl::Duration> pauses;
  int tries = 0;
  grpc::Status s = CallActive(targets, FastPolicy(&pauses),
                              [&](const std::string&, grpc::ClientContext*) {
                                ++tries;
                                return grpc::Status(grpc::StatusCode::NOT_FOUND, "no job 7");
                              });
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(tries, 1);
}

TEST(CoordinatorTargetsTest, ClassifiesConnectionFailuresAsUnreached) {
  const std::multimap<grpc::string_ref, grpc::string_ref> none;
  EXPECT_EQ(ClassifyCallEnd(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                         "failed to connect to all addresses; last error: "
                                         "UNKNOWN: ipv4:127.0.0.1:1: Connection refused"),
                            none)
                .reach,
            CallReach::kUnreached);
  EXPECT_EQ(ClassifyCallEnd(grpc::Status(grpc::StatusCode::UNAVAILABLE, "Socket closed"), none)
                .reach,
            CallReach::kMaybeReached);
  EXPECT_EQ(ClassifyCallEnd(grpc::Status::OK, none).reach, CallReach::kAnswered);
}

}  // namespace
}  // namespace musafarm
