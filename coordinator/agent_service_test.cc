#include "coordinator/agent_service.h"

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "musafarm/v1/agent_service.grpc.pb.h"
#include "tests/fakes/loopback_transport.h"

namespace musafarm::coordinator {
namespace {

using ::testing::ElementsAre;
using testing::LoopbackTransport;

v1::AgentMessage Register(const std::string& name) {
  v1::AgentMessage m;
  m.mutable_register_()->set_name(name);
  return m;
}

// Polls `cond` until it holds or `limit` passes.
bool Eventually(const std::function<bool()>& cond, absl::Duration limit) {
  const absl::Time end = absl::Now() + limit;
  while (!cond()) {
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Milliseconds(2));
  }
  return true;
}

std::string Delivered(const v1::AgentMessage& m) { return "message 1 " + m.ShortDebugString(); }

class AgentServiceTest : public ::testing::Test {
 protected:
  // Opens a stream as the agent `name` and waits until the sink has its
  // connection and its Register.
  void ConnectAs(const std::string& name) {
    stream_ = stub_->Connect(&ctx_);
    ASSERT_TRUE(stream_->Write(Register(name)));
    ASSERT_EQ(t_.sink.calls.AwaitCalls(2).size(), 2u);
  }

  LoopbackTransport t_;
  std::unique_ptr<v1::AgentService::Stub> stub_ = v1::AgentService::NewStub(t_.channel);
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::AgentMessage, v1::CoordinatorMessage>> stream_;
};

TEST_F(AgentServiceTest, DeliversConnectMessagesAndEndInStreamOrderOnTheLoop) {
  auto stream = stub_->Connect(&ctx_);
  v1::AgentMessage beat;
  beat.mutable_heartbeat()->set_sent_us(42);
  ASSERT_TRUE(stream->Write(Register("builder-1")));
  ASSERT_TRUE(stream->Write(beat));
  ASSERT_TRUE(stream->WritesDone());
  // The agent's half-close ends the stream OK once everything was read.
  grpc::Status end = stream->Finish();
  EXPECT_TRUE(end.ok()) << end.error_message();

  EXPECT_THAT(
      t_.sink.calls.AwaitCalls(4),
      ElementsAre("connected 1", Delivered(Register("builder-1")), Delivered(beat), "gone 1"));
  EXPECT_TRUE(t_.sink.calls.AllOn(t_.LoopThread()));
}

TEST_F(AgentServiceTest, SinkSendsReachTheAgentInOrderAndCloseEndsWithItsCode) {
  ConnectAs("builder-1");
  std::shared_ptr<AgentConnection> conn = t_.sink.Connection(1);
  ASSERT_NE(conn, nullptr);
  EXPECT_THAT(conn->Peer(), ::testing::HasSubstr("127.0.0.1"));

  // From a thread that is not a gRPC one, several at once: one write in
  // flight, the rest queued, all delivered in order.
  for (int i = 0; i < 20; ++i) {
    v1::CoordinatorMessage m;
    m.mutable_keep_images()->add_images("img-" + std::to_string(i));
    conn->Send(m);
  }
  for (int i = 0; i < 20; ++i) {
    v1::CoordinatorMessage in;
    ASSERT_TRUE(stream_->Read(&in)) << i;
    ASSERT_EQ(in.keep_images().images(0), "img-" + std::to_string(i));
  }
  conn->Close(absl::FailedPreconditionError("agent builder-1 is already connected"));
  v1::CoordinatorMessage in;
  EXPECT_FALSE(stream_->Read(&in));
  grpc::Status end = stream_->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(end.error_message(), "agent builder-1 is already connected");
  EXPECT_EQ(t_.sink.calls.AwaitCalls(3).back(), "gone 1");

  // The sink may still hold the connection: using it now changes nothing.
  conn->Send(v1::CoordinatorMessage());
  conn->Close(absl::InternalError("again"));
}

TEST_F(AgentServiceTest, CancelledStreamIsReportedGone) {
  ConnectAs("builder-2");
  ctx_.TryCancel();
  EXPECT_EQ(stream_->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_EQ(t_.sink.calls.AwaitCalls(3).back(), "gone 1");
}

// Issue 12: a message that does not decode ends the stream with
// INVALID_ARGUMENT (it ended OK, like a half-close), and the sink never hears
// of it. A proto3 string field with bytes that are not UTF-8 is such a message:
// the client's protobuf encodes it (logging an error), the server's refuses it.
TEST_F(AgentServiceTest, UndecodableMessageEndsTheStreamWithInvalidArgument) {
  ConnectAs("builder-3");
  v1::AgentMessage bad;
  bad.mutable_hand_back()->set_task_id("1/\xff\xfe");
  stream_->Write(bad);
  v1::CoordinatorMessage in;
  EXPECT_FALSE(stream_->Read(&in));
  grpc::Status end = stream_->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << end.error_message();
  EXPECT_THAT(end.error_message(), ::testing::HasSubstr("does not decode"));
  // connected, the register, gone: nothing for the undecodable message.
  EXPECT_THAT(t_.sink.calls.AwaitCalls(3),
              ElementsAre("connected 1", Delivered(Register("builder-3")), "gone 1"));
}

// A message past the limits (common/limits.h) is refused the same way, before
// the core sees it.
TEST_F(AgentServiceTest, OversizedRegisterEndsTheStreamBeforeTheSinkSeesIt) {
  auto stream = stub_->Connect(&ctx_);
  v1::AgentMessage reg = Register(std::string(1 << 20, 'n'));
  for (int i = 0; i < 100'000; ++i) reg.mutable_register_()->add_labels("l");
  stream->Write(reg);
  v1::CoordinatorMessage in;
  EXPECT_FALSE(stream->Read(&in));
  grpc::Status end = stream->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(end.error_message(),
              ::testing::HasSubstr("register: name: is 1048576 bytes long; the limit is 128"));
  EXPECT_THAT(t_.sink.calls.AwaitCalls(2), ElementsAre("connected 1", "gone 1"));
}

// An agent that sends faster than the loop delivers (one that ignores its log
// window, or a loop stalled on a slow disk) is read no further than
// kPauseReadsAt ahead of the loop; once the loop catches up it reads on, and
// every message arrives, in order. Without the bound the coordinator would
// read all 48 MiB into memory while the loop is blocked.
TEST(AgentServiceBackpressureTest, AStreamIsReadNoFurtherThanItsBoundAheadOfTheLoop) {
  LoopbackTransport t;
  constexpr int kChunks = 48;
  constexpr size_t kChunk = 1 << 20;
  std::vector<uint64_t> offsets;  // on the loop only, read after it is stopped
  std::atomic<int> delivered{0};
  t.sink.on_message = [&](const v1::AgentMessage& m) {
    if (!m.has_log()) return;
    offsets.push_back(m.log().offset());
    delivered.fetch_add(1);
  };
  auto stub = v1::AgentService::NewStub(t.channel);
  grpc::ClientContext ctx;
  auto stream = stub->Connect(&ctx);
  ASSERT_TRUE(stream->Write(Register("loud-1")));
  ASSERT_EQ(t.sink.calls.AwaitCalls(1).size(), 1u);  // connected

  absl::Notification loop_free;
  t.PostToLoop([&loop_free] { loop_free.WaitForNotification(); });
  std::atomic<int> written{0};
  std::thread writer([&] {
    for (int i = 0; i < kChunks; ++i) {
      v1::AgentMessage m;
      m.mutable_log()->set_task_id("1/loud");
      m.mutable_log()->set_attempt_id(1);
      m.mutable_log()->set_offset(static_cast<uint64_t>(i) * kChunk);
      m.mutable_log()->set_data(std::string(kChunk, 'x'));
      if (!stream->Write(m)) return;
      written.fetch_add(1);
    }
  });
  const coordinator::AgentStreamStats& stats = t.server().agent_stream_stats();
  // With the bound the stream pauses; without it the writer gets all out.
  ASSERT_TRUE(Eventually([&] { return stats.read_pauses.load() > 0 || written.load() == kChunks; },
                      absl::Seconds(60)));
  EXPECT_EQ(stats.read_pauses.load(), 1u);
  EXPECT_LE(stats.peak_undelivered_bytes.load(),
            coordinator::AgentServiceImpl::kPauseReadsAt + kChunk + 4096);
  EXPECT_LT(written.load(), kChunks);

  loop_free.Notify();
  writer.join();
  ASSERT_EQ(written.load(), kChunks);
  ASSERT_TRUE(Eventually([&] { return delivered.load() == kChunks; }, absl::Seconds(60)));
  stream->WritesDone();
  EXPECT_TRUE(stream->Finish().ok());
  std::vector<uint64_t> seen;
  t.PostToLoop([&] { seen = offsets; });
  ASSERT_TRUE(Eventually([&] { return seen.size() == kChunks; }, absl::Seconds(10)));
  for (int i = 0; i < kChunks; ++i) EXPECT_EQ(seen[i], static_cast<uint64_t>(i) * kChunk) << i;
  EXPECT_GE(stats.peak_undelivered_bytes.load(), coordinator::AgentServiceImpl::kPauseReadsAt);
}

// Enroll and RenewCertificate are unary calls answered by the EnrollmentApi on
// the loop; their refusals keep code and message. Without TLS the renewal
// hands over no certificate (the EnrollmentApi then refuses it).
TEST(AgentServiceEnrollmentTest, UnaryCallsReachTheEnrollmentApiOnTheLoop) {
  LoopbackTransport t;
  auto stub = v1::AgentService::NewStub(t.channel);
  auto deadline = [] { return std::chrono::system_clock::now() + std::chrono::seconds(30); };

  v1::EnrollRequest enroll;
  enroll.set_name("a1");
  v1::EnrollResponse enrolled;
  grpc::ClientContext c1;
  c1.set_deadline(deadline());
  ASSERT_TRUE(stub->Enroll(&c1, enroll, &enrolled).ok());
  EXPECT_EQ(enrolled.certificate_pem(), "cert for a1");

  v1::RenewCertificateRequest renew;
  renew.set_csr_pem("csr");
  v1::RenewCertificateResponse renewed;
  grpc::ClientContext c2;
  c2.set_deadline(deadline());
  ASSERT_TRUE(stub->RenewCertificate(&c2, renew, &renewed).ok());
  EXPECT_EQ(renewed.certificate_pem(), "renewed");

  t.enrollment.status = absl::UnauthenticatedError("join token 0000beef is used up");
  grpc::ClientContext c3;
  c3.set_deadline(deadline());
  grpc::Status s = stub->Enroll(&c3, enroll, &enrolled);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(s.error_message(), "join token 0000beef is used up");

  EXPECT_THAT(t.enrollment.calls.AwaitCalls(3),
              ElementsAre("Enroll a1", "Renew chain=0 csr", "Enroll a1"));
  EXPECT_TRUE(t.enrollment.calls.AllOn(t.LoopThread()));
}

}  // namespace
}  // namespace musafarm::coordinator
