#include "coordinator/agent_service.h"

#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"
#include "common/logging.h"

namespace musafarm::coordinator {
namespace {

// One agent stream. One read and at most one write in flight; Finish exactly
// once, never with a write outstanding. `self_` keeps the object alive until
// OnDone, and the core holds another reference, so a late Send is a no-op.
class AgentStream final : public grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>,
                          public AgentConnection {
 public:
  AgentStream(EventLoop* loop, Core* core, std::string peer)
      : loop_(loop), core_(core), peer_(std::move(peer)) {}

  void Begin(std::shared_ptr<AgentStream> self) {
    self_ = self;
    // Registered with the core by a closure posted before any message can be:
    // every OnReadDone posts after it, so the loop sees the connection first.
    // The read starts here, inside the reaction that created the stream, never
    // later from the loop: by then the call may already be done and freed.
    loop_->Post([this, self] { conn_ = core_->OnAgentConnected(self); });
    StartRead(&in_);
  }

  // AgentConnection
  void Send(v1::CoordinatorMessage msg) override {
    const v1::CoordinatorMessage* next = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      outbox_.push_back(std::move(msg));
      if (writing_) return;
      writing_ = true;
      next = &outbox_.front();
    }
    StartWrite(next);
  }

  void Close(const absl::Status& why) override {
    bool finish_now = false;
    {
      absl::MutexLock lock(&mu_);
      if (finishing_) return;
      finishing_ = true;
      final_ = ToGrpc(why);
      finish_now = !writing_;
      // Drop what is queued, but not the message of a write in flight: gRPC
      // still reads it until OnWriteDone.
      while (outbox_.size() > (writing_ ? 1u : 0u)) outbox_.pop_back();
    }
    if (finish_now) Finish(final_);
  }

  std::string Peer() const override { return peer_; }

  // Reactions
  void OnReadDone(bool ok) override {
    if (!ok) {
      Close(absl::OkStatus());  // the agent half-closed or the stream broke
      return;
    }
    auto msg = std::make_shared<v1::AgentMessage>(std::move(in_));
    in_.Clear();
    loop_->Post([this, msg, self = self_] { core_->OnAgentMessage(conn_, *msg); });
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    const v1::CoordinatorMessage* next = nullptr;
    bool finish_now = false;
    {
      absl::MutexLock lock(&mu_);
      outbox_.pop_front();
      if (!ok && !finishing_) {
        finishing_ = true;
        final_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "write failed");
        outbox_.clear();
      }
      if (finishing_) {
        writing_ = false;
        finish_now = true;
      } else if (outbox_.empty()) {
        writing_ = false;
      } else {
        next = &outbox_.front();
      }
    }
    if (finish_now) Finish(final_);
    if (next != nullptr) StartWrite(next);
  }

  void OnCancel() override { Close(absl::CancelledError("stream cancelled")); }

  void OnDone() override {
    std::shared_ptr<AgentStream> self = std::move(self_);
    loop_->Post([this, self] { core_->OnAgentGone(conn_); });
  }

 private:
  EventLoop* const loop_;
  Core* const core_;
  const std::string peer_;
  Core::ConnId conn_ = 0;  // set on the loop before the first read
  v1::AgentMessage in_;
  std::shared_ptr<AgentStream> self_;

  absl::Mutex mu_;
  std::deque<v1::CoordinatorMessage> outbox_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_;
};

}  // namespace

grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>* AgentServiceImpl::Connect(
    grpc::CallbackServerContext* context) {
  auto stream = std::make_shared<AgentStream>(loop_, core_, context->peer());
  stream->Begin(stream);
  return stream.get();
}

}  // namespace musafarm::coordinator
