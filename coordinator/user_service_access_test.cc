// UserServiceImpl with a real AccessControl and UserAdmin on an SQLite file:
// every call is authenticated and authorized before the (fake) core sees it,
// and state-changing calls, allowed or refused, are audited.
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "coordinator/store_test_fixtures.h"
#include "coordinator/user_service.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "musafarm/v1/user_service.grpc.pb.h"
#include "tests/fakes/loopback_transport.h"

namespace musafarm::coordinator {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class UserServiceAccessTest : public ::testing::Test {
 protected:
  UserServiceAccessTest()
      : access_(store_testing::OpenSqliteOrFail(dir_.File("farm.db")), /*insecure=*/false),
        admin_(store_testing::OpenSqliteOrFail(dir_.File("farm.db"))),
        jobs_store_(store_testing::OpenSqliteOrFail(dir_.File("farm.db"))),
        t_(&access_, &admin_) {
    t_.api.audit_store = jobs_store_.get();
  }

  std::string Token(const std::string& user, const std::string& role) {
    absl::StatusOr<NewApiToken> t =
        admin_.CreateToken({"root", "admin", "host"}, user, role, absl::Hours(1), absl::Now());
    EXPECT_TRUE(t.ok()) << t.status();
    return t.ok() ? t->text : "";
  }

  std::unique_ptr<grpc::ClientContext> As(const std::string& token) {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
    ctx->AddMetadata("x-musafarm-os-user", "mallory");  // ignored: not --insecure
    return ctx;
  }

  std::vector<std::string> AuditLines() {
    absl::StatusOr<std::vector<AuditEntry>> lines = admin_.ListAudit({});
    EXPECT_TRUE(lines.ok()) << lines.status();
    std::vector<std::string> out;
    for (const AuditEntry& e : lines.value_or(std::vector<AuditEntry>{})) {
      if (e.action == "token.create") continue;  // the fixture's own
      out.push_back(e.user + " " + e.action + " " + e.target + " " +
                    e.outcome.substr(0, e.outcome.find(':')));
    }
    return out;
  }

  store_testing::TempDir dir_;
  AccessControl access_;
  UserAdmin admin_;
  std::unique_ptr<Store> jobs_store_;  // the core's: a job's audit line commits with it
  testing::LoopbackTransport t_;
  std::unique_ptr<v1::UserService::Stub> stub_ = v1::UserService::NewStub(t_.channel);
};

TEST_F(UserServiceAccessTest, WithoutATokenEveryCallIsRefusedBeforeTheCore) {
  v1::ListJobsResponse jobs;
  grpc::Status s = stub_->ListJobs(As("").get(), v1::ListJobsRequest(), &jobs);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(s.error_message(), HasSubstr("no API token"));
  v1::SubmitResponse submitted;
  s = stub_->Submit(As("").get(), v1::SubmitRequest(), &submitted);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::RerunRequest rerun;
  rerun.set_job_id("7");
  v1::RerunResponse rerun_resp;
  s = stub_->Rerun(As("").get(), rerun, &rerun_resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  v1::WatchJobRequest watch;
  watch.set_job_id("7");
  auto ctx = As("");
  auto reader = stub_->WatchJob(ctx.get(), watch);
  v1::WatchEvent e;
  EXPECT_FALSE(reader->Read(&e));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);
  // Only the refused stream's end reaches the core (removing a watcher it never added).
  EXPECT_THAT(t_.api.calls.AwaitCalls(1), ElementsAre("RemoveWatcher 1"));
  EXPECT_EQ(t_.api.calls.Count(), 1u);
  EXPECT_TRUE(AuditLines().empty());  // the caller is unknown: nothing to attribute
}

// Issue 20: who is active is for any reader, and only for one.
TEST_F(UserServiceAccessTest, ListCoordinatorsIsForAnyReader) {
  t_.coordinators.set_store("sqlite");
  t_.coordinators.add_coordinators()->set_address("h:7070");
  v1::ListCoordinatorsResponse listed;
  grpc::Status s = stub_->ListCoordinators(As("").get(), v1::ListCoordinatorsRequest(), &listed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  s = stub_->ListCoordinators(As(Token("vera", "viewer")).get(), v1::ListCoordinatorsRequest(),
                              &listed);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(listed.store(), "sqlite");
  ASSERT_EQ(listed.coordinators_size(), 1);
  EXPECT_EQ(listed.coordinators(0).address(), "h:7070");
  EXPECT_TRUE(AuditLines().empty());  // a read: not audited
}

TEST_F(UserServiceAccessTest, RolesAreCheckedAndStateChangesAudited) {
  const std::string viewer = Token("vera", "viewer");
  const std::string submitter = Token("sam", "submitter");
  t_.api.owner = "sam";

  v1::ListJobsRequest mine;
  mine.set_mine(true);
  v1::ListJobsResponse jobs;
  ASSERT_TRUE(stub_->ListJobs(As(viewer).get(), mine, &jobs).ok());
  v1::SubmitRequest submit;
  submit.set_name("n");
  v1::SubmitResponse submitted;
  grpc::Status s = stub_->Submit(As(viewer).get(), submit, &submitted);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("user vera (role viewer) cannot submit jobs"));
  ASSERT_TRUE(stub_->Submit(As(submitter).get(), submit, &submitted).ok());
  EXPECT_EQ(submitted.job().submitter(), "sam");

  v1::CancelRequest cancel;
  v1::CancelResponse cancelled;
  cancel.set_id("theirs-1");
  s = stub_->Cancel(As(submitter).get(), cancel, &cancelled);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("submitted by someone-else"));
  cancel.set_id("7");
  ASSERT_TRUE(stub_->Cancel(As(submitter).get(), cancel, &cancelled).ok());
  v1::DrainRequest drain;
  drain.set_agent("a1");
  v1::DrainResponse drained;
  EXPECT_EQ(stub_->Drain(As(submitter).get(), drain, &drained).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);

  // The core saw only what was allowed, with the token's user.
  EXPECT_THAT(t_.api.calls.AwaitCalls(3),
              ElementsAre("ListJobs 0 vera", "Submit n by sam", "Cancel 7"));
  EXPECT_THAT(AuditLines(),
              ElementsAre("vera submit  denied", "sam submit 7 ok", "sam cancel theirs-1 denied",
                          "sam cancel 7 ok", "sam drain a1 denied"));

  v1::WhoAmIResponse me;
  ASSERT_TRUE(stub_->WhoAmI(As(submitter).get(), v1::WhoAmIRequest(), &me).ok());
  EXPECT_EQ(me.user(), "sam");
  EXPECT_EQ(me.role(), "submitter");
  EXPECT_FALSE(me.insecure());
}

TEST_F(UserServiceAccessTest, RerunIsTheSubmittersOwnOrAnAdminsAndAudited) {
  const std::string viewer = Token("vera", "viewer");
  const std::string submitter = Token("sam", "submitter");
  const std::string admin = Token("ada", "admin");
  t_.api.owner = "sam";

  v1::RerunRequest rerun;
  rerun.set_job_id("7");
  rerun.set_failed_only(true);
  v1::RerunResponse resp;
  grpc::Status s = stub_->Rerun(As(viewer).get(), rerun, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("user vera (role viewer) cannot rerun jobs"));
  rerun.set_job_id("theirs-1");
  s = stub_->Rerun(As(submitter).get(), rerun, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_THAT(s.error_message(), HasSubstr("submitted by someone-else"));
  rerun.set_job_id("7/3.9/test");
  s = stub_->Rerun(As(submitter).get(), rerun, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("'7/3.9/test' is no job id"));
  rerun.set_job_id("7");
  ASSERT_TRUE(stub_->Rerun(As(submitter).get(), rerun, &resp).ok());
  EXPECT_EQ(resp.job().id(), "8");
  EXPECT_EQ(resp.job().rerun_of(), "7");
  EXPECT_EQ(resp.job().submitter(), "sam");
  // An admin may rerun anyone's job; the new one is the admin's.
  rerun.set_job_id("theirs-1");
  rerun.set_failed_only(false);
  ASSERT_TRUE(stub_->Rerun(As(admin).get(), rerun, &resp).ok());
  EXPECT_EQ(resp.job().submitter(), "ada");

  EXPECT_THAT(t_.api.calls.AwaitCalls(2),
              ElementsAre("Rerun 7 failed by sam", "Rerun theirs-1 by ada"));
  EXPECT_THAT(AuditLines(),
              ElementsAre("vera rerun 7 denied", "sam rerun theirs-1 denied",
                          "sam rerun 7/3.9/test error", "sam rerun 7 as 8 ok",
                          "ada rerun theirs-1 as 8 ok"));
}

}  // namespace
}  // namespace musafarm::coordinator
