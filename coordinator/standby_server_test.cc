// A standby's port (issue 20): every call refused UNAVAILABLE naming the
// active coordinator, but ListCoordinators, answered here for any reader.
#include "coordinator/standby_server.h"

#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/event_loop.h"
#include "coordinator/store_test_fixtures.h"
#include "coordinator/user_admin.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;

std::string Trailer(const grpc::ClientContext& ctx) {
  const auto& md = ctx.GetServerTrailingMetadata();
  auto it = md.find(kActiveCoordinatorKey);
  return it == md.end() ? "" : std::string(it->second.data(), it->second.size());
}

class StandbyServerTest : public ::testing::Test {
 protected:
  StandbyServerTest()
      : access_(store_testing::OpenSqliteOrFail(dir_.File("farm.db")), /*insecure=*/false),
        admin_(store_testing::OpenSqliteOrFail(dir_.File("farm.db"))),
        standby_(std::nullopt, [] { return std::string("active.example:7070"); }) {
    io_.Start();
    standby_.ServeCoordinators(
        &access_, &io_,
        [this]() -> absl::StatusOr<v1::ListCoordinatorsResponse> { return listing_; });
    absl::StatusOr<int> port = standby_.Start("127.0.0.1:0");
    EXPECT_TRUE(port.ok()) << port.status();
    stub_ = v1::UserService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port.value_or(0)), grpc::InsecureChannelCredentials()));
    listing_.set_answered_by("standby");
    v1::CoordinatorInfo* active = listing_.add_coordinators();
    active->set_address("active.example:7070");
    active->set_role(v1::COORDINATOR_ROLE_ACTIVE);
  }
  ~StandbyServerTest() override {
    standby_.Shutdown();
    io_.Stop();
  }

  std::unique_ptr<grpc::ClientContext> As(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    return ctx;
  }

  store_testing::TempDir dir_;
  AccessControl access_;
  UserAdmin admin_;
  EventLoop io_;
  v1::ListCoordinatorsResponse listing_;  // read on io_
  StandbyServer standby_;
  std::unique_ptr<v1::UserService::Stub> stub_;
};

TEST_F(StandbyServerTest, ListCoordinatorsIsAnsweredHereAndEverythingElseRefused) {
  absl::StatusOr<NewApiToken> viewer =
      admin_.CreateToken({"root", "admin", "host"}, "vera", "viewer", absl::Hours(1), absl::Now());
  ASSERT_TRUE(viewer.ok()) << viewer.status();

  v1::ListCoordinatorsResponse listed;
  auto ctx = As(viewer->text);
  grpc::Status s = stub_->ListCoordinators(ctx.get(), v1::ListCoordinatorsRequest(), &listed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(listed.answered_by(), "standby");
  ASSERT_EQ(listed.coordinators_size(), 1);
  EXPECT_EQ(listed.coordinators(0).role(), v1::COORDINATOR_ROLE_ACTIVE);
  EXPECT_EQ(Trailer(*ctx), "");

  // Admitted as the active one admits it.
  ctx = As("");
  s = stub_->ListCoordinators(ctx.get(), v1::ListCoordinatorsRequest(), &listed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("no API token"));

  // Any other call: refused, naming the active one.
  v1::ListAgentsResponse agents;
  ctx = As(viewer->text);
  s = stub_->ListAgents(ctx.get(), v1::ListAgentsRequest(), &agents);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(s.error_message(),
            "standby coordinator; the active coordinator is at active.example:7070");
  EXPECT_EQ(Trailer(*ctx), "active.example:7070");
}

}  // namespace
}  // namespace musafarm::coordinator
