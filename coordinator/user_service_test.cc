#include "coordinator/user_service.h"

#include <atomic>

#include <google/protobuf/util/time_util.h>

#include <memory>
#include <string>

#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "musafarm/v1/user_service.grpc.pb.h"
#include "tests/fakes/loopback_transport.h"

namespace musafarm::coordinator {
namespace {

using ::testing::ElementsAre;
using testing::LoopbackTransport;

class UserServiceTest : public ::testing::Test {
 protected:
  std::unique_ptr<grpc::ClientContext> Context() {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    // Plaintext and no token: the OS user the CLI names is the caller.
    ctx->AddMetadata("x-musafarm-os-user", "dev");
    return ctx;
  }

  LoopbackTransport t_;
  std::unique_ptr<v1::UserService::Stub> stub_ = v1::UserService::NewStub(t_.channel);
};

TEST_F(UserServiceTest, UnaryCallsReachTheApiOnTheLoopAndReturnItsAnswer) {
  v1::SubmitRequest submit;
  submit.set_name("nightly");
  v1::SubmitResponse submitted;
  ASSERT_TRUE(stub_->Submit(Context().get(), submit, &submitted).ok());
  EXPECT_EQ(submitted.job().id(), "7");
  EXPECT_EQ(submitted.job().name(), "nightly");

  v1::GetJobRequest get;
  get.set_job_id("9");
  v1::Job job;
  ASSERT_TRUE(stub_->GetJob(Context().get(), get, &job).ok());
  EXPECT_EQ(job.id(), "9");

  v1::ListJobsRequest list;
  list.set_limit(5);
  v1::ListJobsResponse jobs;
  ASSERT_TRUE(stub_->ListJobs(Context().get(), list, &jobs).ok());
  ASSERT_EQ(jobs.jobs_size(), 2);
  EXPECT_EQ(jobs.jobs(0).id(), "2");

  v1::ListAgentsResponse agents;
  ASSERT_TRUE(stub_->ListAgents(Context().get(), v1::ListAgentsRequest(), &agents).ok());
  ASSERT_EQ(agents.agents_size(), 1);
  EXPECT_EQ(agents.agents(0).name(), "builder-1");

  v1::DrainRequest drain;
  drain.set_agent("builder-1");
  drain.set_undrain(true);
  v1::DrainResponse drained;
  ASSERT_TRUE(stub_->Drain(Context().get(), drain, &drained).ok());
  EXPECT_EQ(drained.agent().name(), "builder-1");

  v1::GetLogRequest log;
  log.set_task_id("7/t");
  v1::GetLogResponse logged;
  ASSERT_TRUE(stub_->GetLog(Context().get(), log, &logged).ok());
  EXPECT_EQ(logged.data(), "log of 7/t");

  v1::CancelRequest cancel;
  cancel.set_id("7");
  v1::CancelResponse cancelled;
  ASSERT_TRUE(stub_->Cancel(Context().get(), cancel, &cancelled).ok());

  v1::GetArtifactRequest artifact;
  artifact.set_name("ut_output.txt");
  v1::GetArtifactResponse fetched;
  ASSERT_TRUE(stub_->GetArtifact(Context().get(), artifact, &fetched).ok());

  EXPECT_THAT(t_.api.calls.AwaitCalls(8),
              ElementsAre("Submit nightly by dev", "GetJob 9", "ListJobs 5", "ListAgents",
                          "Drain builder-1 undrain", "GetLog 7/t", "Cancel 7",
                          "GetArtifact ut_output.txt"));
  EXPECT_TRUE(t_.api.calls.AllOn(t_.LoopThread()));
}

// Issue 19: a submission runs in a group of the loop (EventLoop::PostGrouped),
// so that the Core answers it once the job is stored and places its tasks,
// one commit for all that queued up meanwhile, at the end of the group.
TEST_F(UserServiceTest, SubmitRunsInAGroupOfTheLoop) {
  std::atomic<bool> grouped{false};
  t_.api.on_submit = [this, &grouped] { grouped = t_.in_group.load(); };
  v1::SubmitRequest submit;
  submit.set_name("nightly");
  v1::SubmitResponse submitted;
  ASSERT_TRUE(stub_->Submit(Context().get(), submit, &submitted).ok());
  EXPECT_EQ(submitted.job().id(), "7");
  EXPECT_TRUE(grouped);
}

TEST_F(UserServiceTest, ErrorsKeepTheirCodeAndMessage) {
  const absl::Status errors[] = {
      absl::NotFoundError("no job 9"),
      absl::InvalidArgumentError("pipeline.yaml:3:5: stages: expected a list"),
      absl::FailedPreconditionError("job 9 has ended"),
      absl::UnavailableError("coordinator is shutting down"),
      absl::InternalError("store: disk full"),
  };
  for (const absl::Status& error : errors) {
    t_.api.status = error;
    v1::GetJobRequest get;
    get.set_job_id("9");
    v1::Job job;
    grpc::Status s = stub_->GetJob(Context().get(), get, &job);
    EXPECT_EQ(static_cast<int>(s.error_code()), static_cast<int>(error.code())) << error;
    EXPECT_EQ(s.error_message(), error.message());

    v1::SubmitResponse submitted;
    s = stub_->Submit(Context().get(), v1::SubmitRequest(), &submitted);
    EXPECT_EQ(static_cast<int>(s.error_code()), static_cast<int>(error.code())) << error;
  }
}

TEST_F(UserServiceTest, WatchWritesEveryEventInOrderThenEndsWithTheApiStatus) {
  v1::WatchJobRequest req;
  req.set_job_id("7");
  auto ctx = Context();
  auto reader = stub_->WatchJob(ctx.get(), req);
  ASSERT_THAT(t_.api.calls.AwaitCalls(1), ElementsAre("AddWatcher 7"));
  std::shared_ptr<Watcher> watcher = t_.api.Watcher(1);
  ASSERT_NE(watcher, nullptr);
  for (int i = 0; i < 20; ++i) {
    v1::WatchEvent e;
    e.mutable_task()->set_id("7/t" + std::to_string(i));
    watcher->Send(e);
  }
  // Finishing does not drop what is queued: the watcher sees every event first.
  watcher->Finish(absl::NotFoundError("job 7 was deleted"));
  watcher->Send(v1::WatchEvent());  // after Finish: dropped
  for (int i = 0; i < 20; ++i) {
    v1::WatchEvent e;
    ASSERT_TRUE(reader->Read(&e)) << i;
    EXPECT_EQ(e.task().id(), "7/t" + std::to_string(i));
  }
  v1::WatchEvent extra;
  EXPECT_FALSE(reader->Read(&extra));
  grpc::Status end = reader->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(end.error_message(), "job 7 was deleted");
  EXPECT_EQ(t_.api.calls.AwaitCalls(2).back(), "RemoveWatcher 1");
}

// The user API sends each time twice until v2: the *_us integers the core
// keeps, and Timestamps filled from them here, which JSON shows as RFC 3339.
TEST_F(UserServiceTest, TimesGoOutAsTimestampsBesideTheMicroseconds) {
  using google::protobuf::util::TimeUtil;
  constexpr int64_t kT0 = testing::FakeUserApi::kCreatedUs;
  v1::GetJobRequest get;
  get.set_job_id("9");
  v1::Job job;
  ASSERT_TRUE(stub_->GetJob(Context().get(), get, &job).ok());
  EXPECT_EQ(job.created_us(), kT0);
  EXPECT_EQ(TimeUtil::ToString(job.created_time()), "2026-12-01T10:00:00Z");
  EXPECT_FALSE(job.has_ended_time());  // not ended: no Timestamp
  ASSERT_EQ(job.tasks_size(), 1);
  EXPECT_EQ(TimeUtil::ToString(job.tasks(0).started_time()), "2026-12-01T10:00:01.500Z");

  v1::ListAgentsResponse agents;
  ASSERT_TRUE(stub_->ListAgents(Context().get(), v1::ListAgentsRequest(), &agents).ok());
  ASSERT_EQ(agents.agents_size(), 1);
  EXPECT_EQ(TimeUtil::ToString(agents.agents(0).last_seen_time()), "2026-12-01T10:00:00Z");

  v1::WatchJobRequest req;
  req.set_job_id("7");
  auto ctx = Context();
  auto reader = stub_->WatchJob(ctx.get(), req);
  ASSERT_EQ(t_.api.calls.AwaitCalls(3).back(), "AddWatcher 7");
  std::shared_ptr<Watcher> watcher = t_.api.Watcher(1);
  ASSERT_NE(watcher, nullptr);
  v1::WatchEvent sent;
  sent.mutable_task()->set_ended_us(kT0 + 60000000);
  watcher->Send(sent);
  watcher->Finish(absl::OkStatus());
  v1::WatchEvent got;
  ASSERT_TRUE(reader->Read(&got));
  EXPECT_EQ(TimeUtil::ToString(got.task().ended_time()), "2026-12-01T10:01:00Z");
  EXPECT_FALSE(reader->Read(&got));
  EXPECT_TRUE(reader->Finish().ok());
}

TEST_F(UserServiceTest, RevokeAgentReachesTheApiOnTheLoopAndKeepsItsRefusals) {
  v1::RevokeAgentRequest req;
  req.set_agent("builder-1");
  v1::RevokeAgentResponse resp;
  ASSERT_TRUE(stub_->RevokeAgent(Context().get(), req, &resp).ok());
  EXPECT_EQ(resp.agent().name(), "builder-1");
  EXPECT_TRUE(resp.agent().revoked());
  EXPECT_EQ(google::protobuf::util::TimeUtil::ToString(resp.agent().last_seen_time()),
            "2026-12-01T10:00:00Z");

  t_.api.status = absl::NotFoundError("no agent named 'typo' has connected or enrolled");
  req.set_agent("typo");
  grpc::Status s = stub_->RevokeAgent(Context().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "no agent named 'typo' has connected or enrolled");
  EXPECT_THAT(t_.api.calls.AwaitCalls(2), ElementsAre("RevokeAgent builder-1", "RevokeAgent typo"));
  EXPECT_TRUE(t_.api.calls.AllOn(t_.LoopThread()));
}

TEST_F(UserServiceTest, WatchRefusedByTheApiEndsWithItsCode) {
  t_.api.status = absl::NotFoundError("no job 8");
  v1::WatchJobRequest req;
  req.set_job_id("8");
  auto ctx = Context();
  auto reader = stub_->WatchJob(ctx.get(), req);
  v1::WatchEvent e;
  EXPECT_FALSE(reader->Read(&e));
  grpc::Status end = reader->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(end.error_message(), "no job 8");
  EXPECT_THAT(t_.api.calls.AwaitCalls(2), ElementsAre("AddWatcher 8", "RemoveWatcher 1"));
}

}  // namespace
}  // namespace musafarm::coordinator
