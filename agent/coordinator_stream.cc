#include "agent/coordinator_stream.h"

namespace musafarm::agent {

std::shared_ptr<CoordinatorStream> CoordinatorStream::Open(v1::AgentService::Stub* stub,
                                                           OnMessage on_message, OnEnd on_end) {
  std::shared_ptr<CoordinatorStream> s(
      new CoordinatorStream(std::move(on_message), std::move(on_end)));
  s->self_ = s;
  stub->async()->Connect(&s->context_, s.get());
  // Send() starts writes from outside reactions; gRPC requires a hold for
  // that, or the call could complete (and be freed) while a Send is between
  // its check and StartWrite. Released once reads have failed and no write
  // is in flight.
  s->AddHold();
  s->StartRead(&s->in_);
  s->StartCall();
  return s;
}

void CoordinatorStream::Send(v1::AgentMessage msg) {
  const v1::AgentMessage* next = nullptr;
  {
    absl::MutexLock lock(&mu_);
    if (done_ || closing_ || close_send_) return;
    outbox_.push_back(std::move(msg));
    if (writing_) return;
    writing_ = true;
    next = &outbox_.front();
  }
  StartWrite(next);
}

void CoordinatorStream::Cancel() { context_.TryCancel(); }

void CoordinatorStream::CloseSend() {
  {
    absl::MutexLock lock(&mu_);
    if (done_ || closing_ || close_send_) return;
    close_send_ = true;
    // A write in flight: OnWriteDone starts it once the outbox is empty.
    // The writes-done counts as a write: the hold stays until it completes.
    if (writing_) return;
    writing_ = true;
    writes_done_ = true;
  }
  StartWritesDone();
}

void CoordinatorStream::OnWritesDoneDone(bool /*ok*/) {
  bool release = false;
  {
    absl::MutexLock lock(&mu_);
    writing_ = false;
    release = closing_ && !hold_released_;
    hold_released_ = hold_released_ || release;
  }
  if (release) RemoveHold();
}

void CoordinatorStream::OnReadDone(bool ok) {
  if (!ok) {
    // The stream is ending. Once no write is in flight, let it complete.
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
      release = !writing_ && !hold_released_;
      hold_released_ = hold_released_ || release;
    }
    if (release) RemoveHold();
    return;
  }
  on_message_(std::move(in_));
  in_.Clear();
  StartRead(&in_);
}

void CoordinatorStream::OnWriteDone(bool ok) {
  const v1::AgentMessage* next = nullptr;
  bool release = false, writes_done = false;
  {
    absl::MutexLock lock(&mu_);
    outbox_.pop_front();
    // On a broken stream what is queued is dropped: the agent resends from the
    // acknowledged offsets after reconnecting.
    if (!ok) outbox_.clear();
    if (ok && outbox_.empty() && close_send_ && !closing_ && !writes_done_) {
      writes_done_ = true;  // still writing_: the writes-done is the write in flight
      writes_done = true;
    } else if (outbox_.empty() || closing_) {
      writing_ = false;
      release = closing_ && !hold_released_;
      hold_released_ = hold_released_ || release;
    } else {
      next = &outbox_.front();
    }
  }
  if (release) RemoveHold();
  if (writes_done) StartWritesDone();
  if (next != nullptr) StartWrite(next);
}

void CoordinatorStream::OnDone(const grpc::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    done_ = true;
  }
  // Our own reference goes before the agent hears of the end, so that the
  // agent's reference is the last: the stream (and its ClientContext) is then
  // destroyed on the agent's loop when it drops it, before the agent can
  // report itself stopped and its channel be destroyed. Nothing of `this` is
  // touched after the reset.
  OnEnd on_end = on_end_;
  self_.reset();
  on_end(status);
}

}  // namespace musafarm::agent
