#include "coordinator/agent_service.h"

#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/bounded_text.h"
#include "common/grpc_status.h"
#include "common/logging.h"
#include "common/stream_outbox.h"
#include "coordinator/agent_messages.h"
#include "coordinator/tls_material.h"
#include "grpcpp/support/proto_buffer_reader.h"
#include "grpcpp/support/proto_buffer_writer.h"

namespace musafarm::coordinator {
namespace {

// One agent stream. One read and at most one write in flight; Finish exactly
// once, never with a write outstanding. `self_` keeps the object alive until
// OnDone, and the sink holds another reference, so a late Send is a no-op.
class AgentStream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>,
                          public AgentConnection {
 public:
  using Outbox = StreamOutbox<grpc::ByteBuffer>;

  AgentStream(EventLoop* loop, AgentEventSink* sink, AgentStreamStats* stats, std::string peer,
              std::optional<AgentIdentity> identity)
      : loop_(loop),
        sink_(sink),
        stats_(stats),
        peer_(std::move(peer)),
        identity_(std::move(identity)) {}

  void Begin(std::shared_ptr<AgentStream> self) {
    self_ = self;
    // Registered with the sink by a closure posted before any message can be:
    // every OnReadDone posts after it, so the loop sees the connection first.
    // The read starts here, inside the reaction that created the stream, never
    // later from the loop: by then the call may already be done and freed.
    loop_->Post([this, self] { conn_ = sink_->OnAgentConnected(self); });
    StartRead(&in_);
  }

  // AgentConnection
  void Send(v1::CoordinatorMessage msg) override {
    grpc::ByteBuffer bytes;
    bool own = false;
    // Encoding a message we built cannot fail short of a bug.
    if (!grpc::SerializationTraits<v1::CoordinatorMessage>::Serialize(msg, &bytes, &own).ok()) {
      GetLogger("agent_stream")->error("cannot encode a message to {}", peer_);
      return;
    }
    const grpc::ByteBuffer* next = nullptr;
    {
      absl::MutexLock lock(&mu_);
      next = outbox_.Push(std::move(bytes));
    }
    if (next != nullptr) StartWrite(next);
  }

  void Close(const absl::Status& why) override {
    const grpc::Status status = ToGrpc(why);
    bool finish_now = false;
    {
      absl::MutexLock lock(&mu_);
      if (outbox_.closed()) return;
      final_ = status;
      finish_now = outbox_.Close(Outbox::CloseMode::kDrop);
    }
    if (finish_now) Finish(status);
  }

  std::string Peer() const override { return peer_; }
  const AgentIdentity* Identity() const override {
    return identity_.has_value() ? &*identity_ : nullptr;
  }

  // Reactions
  void OnReadDone(bool ok) override {
    if (!ok) {
      Close(absl::OkStatus());  // the agent half-closed or the stream broke
      return;
    }
    auto msg = std::make_shared<v1::AgentMessage>();
    const uint64_t size = in_.Length();
    // Deserialize consumes (clears) in_, ready for the next read.
    if (!grpc::SerializationTraits<v1::AgentMessage>::Deserialize(&in_, msg.get()).ok()) {
      Refuse(absl::InvalidArgumentError(
          "an agent message that does not decode as musafarm.v1.AgentMessage (not protobuf, "
          "or a string field that is not UTF-8)"));
      return;
    }
    if (absl::Status valid = ValidateAgentMessage(*msg); !valid.ok()) {
      Refuse(valid);
      return;
    }
    // Grouped: the messages that arrive while the loop is busy share one commit.
    // A heartbeat need not wake the loop (EventLoop::PostGroupedUnhurried):
    // it keeps its place among this stream's messages and runs at most 100 ms
    // late, against a deadline of seconds. 10,000 agents send ~3,300 a second.
    auto deliver = [this, msg, size, self = self_] {
      sink_->OnAgentMessage(conn_, *msg);
      Delivered(size);
    };
    bool pause = false;
    {
      // Counted before the post: the loop may deliver it before we go on.
      absl::MutexLock lock(&mu_);
      undelivered_ += size;
      RaiseTo(stats_->peak_undelivered_bytes, undelivered_);
      pause = undelivered_ > AgentServiceImpl::kPauseReadsAt;
      reads_paused_ = pause;
    }
    if (msg->has_heartbeat()) {
      loop_->PostGroupedUnhurried(std::move(deliver));
    } else {
      loop_->PostGrouped(std::move(deliver));
    }
    if (pause) {
      stats_->read_pauses.fetch_add(1, std::memory_order_relaxed);
      return;  // Delivered() reads on
    }
    StartRead(&in_);
  }

  // On the loop, after the sink had a message of `size` bytes: a paused
  // stream reads on once the loop has caught up with it.
  void Delivered(uint64_t size) {
    absl::MutexLock lock(&mu_);
    undelivered_ -= size;
    if (!reads_paused_ || undelivered_ > AgentServiceImpl::kResumeReadsAt) return;
    reads_paused_ = false;
    // Under mu_: Close marks the outbox closed under it before it Finishes,
    // so an open outbox here means the call is not finished and this read
    // comes first. gRPC never runs OnReadDone inline in StartRead (server
    // reads are not inlineable), so holding mu_ cannot deadlock with it.
    if (!outbox_.closed()) StartRead(&in_);
  }

  // Ends the stream for a message it sent; reads no more. Logged here, with
  // the peer, because the sink never sees the message.
  void Refuse(const absl::Status& why) {
    GetLogger("agent_stream")->warn("agent stream from {} ended: {}", peer_, Printable(why.message()));
    Close(why);
  }

  void OnWriteDone(bool ok) override {
    Outbox::AfterWrite next;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (!ok && !outbox_.closed()) {
        final_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed");
      }
      next = outbox_.OnWriteDone(ok);
      if (next.end) status = final_;
    }
    if (next.end) Finish(status);
    if (next.write != nullptr) StartWrite(next.write);
  }

  void OnCancel() override { Close(absl::CancelledError("stream cancelled")); }

  void OnDone() override {
    std::shared_ptr<AgentStream> self = std::move(self_);
    loop_->PostGrouped([this, self] { sink_->OnAgentGone(conn_); });
  }

 private:
  static void RaiseTo(std::atomic<uint64_t>& peak, uint64_t value) {
    uint64_t seen = peak.load(std::memory_order_relaxed);
    while (seen < value && !peak.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
    }
  }

  EventLoop* const loop_;
  AgentEventSink* const sink_;
  AgentStreamStats* const stats_;
  const std::string peer_;
  const std::optional<AgentIdentity> identity_;
  AgentEventSink::ConnId conn_ = 0;  // set on the loop before the first read
  grpc::ByteBuffer in_;
  std::shared_ptr<AgentStream> self_;

  absl::Mutex mu_;
  Outbox outbox_ ABSL_GUARDED_BY(mu_);
  grpc::Status final_ ABSL_GUARDED_BY(mu_);
  uint64_t undelivered_ ABSL_GUARDED_BY(mu_) = 0;  // bytes posted, not yet delivered
  bool reads_paused_ ABSL_GUARDED_BY(mu_) = false;
};

// A stream refused before it began: finished at once with the reason; the
// sink never hears of it. Deletes itself when gRPC is done with it.
class RefusedStream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit RefusedStream(const grpc::Status& why) { Finish(why); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* AgentServiceImpl::Connect(
    grpc::CallbackServerContext* context) {
  std::optional<AgentIdentity> identity;
  if (agent_ca_pem_ != nullptr) {
    absl::StatusOr<AgentIdentity> verified =
        VerifyAgentPeer(*context->auth_context(), *agent_ca_pem_, absl::Now());
    if (!verified.ok()) {
      GetLogger("agent_stream")
          ->warn("agent stream from {} refused: {}", context->peer(),
                 std::string(verified.status().message()));
      return new RefusedStream(ToGrpc(verified.status()));
    }
    identity = *std::move(verified);
  }
  auto stream = std::make_shared<AgentStream>(loop_, sink_, &stats_, context->peer(),
                                             std::move(identity));
  stream->Begin(stream);
  return stream.get();
}

namespace {

// The certificate the caller's TLS handshake presented, leaf first: gRPC
// gives the leaf alone in x509_pem_cert and (server side) the rest of the
// chain in x509_pem_cert_chain. Empty without TLS or a client certificate.
std::string PeerChainPem(const grpc::CallbackServerContext& context) {
  std::shared_ptr<const grpc::AuthContext> auth = context.auth_context();
  if (auth == nullptr) return "";
  std::string pem;
  for (const char* property : {"x509_pem_cert", "x509_pem_cert_chain"}) {
    for (const grpc::string_ref& value : auth->FindPropertyValues(property)) {
      pem.append(value.data(), value.size());
    }
  }
  return pem;
}

grpc::ServerUnaryReactor* Unimplemented(grpc::CallbackServerContext* context) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED,
                               "this coordinator does not enrol agents"));
  return reactor;
}

}  // namespace

grpc::ServerUnaryReactor* AgentServiceImpl::Enroll(grpc::CallbackServerContext* context,
                                                   const v1::EnrollRequest* request,
                                                   v1::EnrollResponse* response) {
  if (enrollment_ == nullptr) return Unimplemented(context);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  loop_->Post([this, reactor, request, response, peer = context->peer()] {
    absl::StatusOr<v1::EnrollResponse> r = enrollment_->Enroll(*request, peer);
    if (r.ok()) *response = *std::move(r);
    reactor->Finish(ToGrpc(r.status()));
  });
  return reactor;
}

grpc::ServerUnaryReactor* AgentServiceImpl::RenewCertificate(
    grpc::CallbackServerContext* context, const v1::RenewCertificateRequest* request,
    v1::RenewCertificateResponse* response) {
  if (enrollment_ == nullptr) return Unimplemented(context);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  loop_->Post([this, reactor, request, response, peer = context->peer(),
               chain = PeerChainPem(*context)] {
    absl::StatusOr<v1::RenewCertificateResponse> r = enrollment_->Renew(chain, *request, peer);
    if (r.ok()) *response = *std::move(r);
    reactor->Finish(ToGrpc(r.status()));
  });
  return reactor;
}

}  // namespace musafarm::coordinator
