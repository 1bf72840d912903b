#include "agent/coordinator_stream.h"

namespace musafarm::agent {

std::shared_ptr<CoordinatorStream> CoordinatorStream::Open(v1::AgentService::Stub* stub,
                                                           OnMessage on_message, OnEnd on_end) {
  std::shared_ptr<CoordinatorStream> s(
      new CoordinatorStream(std::move(on_message), std::move(on_end)));
  s->self_ = s;
  stub->async()->Connect(&s->context_, s.get());
  s->StartRead(&s->in_);
  s->StartCall();
  return s;
}

void CoordinatorStream::Send(v1::AgentMessage msg) {
  const v1::AgentMessage* next = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (done_) return;
    outbox_.push_back(std::move(msg));
    if (writing_) return;
    writing_ = true;
    next = &outbox_.front();
  }
  StartWrite(next);
}

void CoordinatorStream::Cancel() { context_.TryCancel(); }

void CoordinatorStream::OnReadDone(bool ok) {
  if (!ok) return;  // the stream is ending; OnDone follows
  on_message_(std::move(in_));
  in_.Clear();
  StartRead(&in_);
}

void CoordinatorStream::OnWriteDone(bool ok) {
  const v1::AgentMessage* next = nullptr;
  {
    absl::MutexLock lock(&mu_);
    outbox_.pop_front();
    if (!ok) {
      // The stream broke; what is queued is resent after the reconnect.
      outbox_.clear();
      writing_ = false;
      return;
    }
    if (outbox_.empty()) {
      writing_ = false;
    } else {
      next = &outbox_.front();
    }
  }
  if (next != nullptr) StartWrite(next);
}

void CoordinatorStream::OnDone(const grpc::Status& status) {
  std::shared_ptr<CoordinatorStream> keep = std::move(self_);  // released on return
  {
    absl::MutexLock lock(&mu_);
    done_ = true;
  }
  on_end_(status);
}

}  // namespace musafarm::agent
