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
    if (done_ || closing_) return;
    next = outbox_.Push(std::move(msg));  // null once CloseSend() was called
  }
  if (next != nullptr) StartWrite(next);
}

void CoordinatorStream::Cancel() { context_.TryCancel(); }

void CoordinatorStream::CloseSend() {
  {
    absl::MutexLock lock(&mu_);
    if (done_ || closing_) return;
    // With a write in flight (or already closed) OnWriteDone starts the
    // writes-done once the outbox is drained. The writes-done counts as a
    // write: the hold stays until it completes.
    if (!outbox_.Close(Outbox::CloseMode::kDrain)) return;
    writes_done_in_flight_ = true;
  }
  StartWritesDone();
}

bool CoordinatorStream::TakeHoldRelease() {
  const bool release = closing_ && !outbox_.writing() && !writes_done_in_flight_ && !hold_released_;
  hold_released_ = hold_released_ || release;
  return release;
}

void CoordinatorStream::OnWritesDoneDone(bool /*ok*/) {
  bool release = false;
  {
    absl::MutexLock lock(&mu_);
    writes_done_in_flight_ = false;
    release = TakeHoldRelease();
  }
  if (release) RemoveHold();
}

void CoordinatorStream::OnReadDone(bool ok) {
  if (!ok) {
    // The stream is ending: nothing more is written. Once no write is in
    // flight, let it complete.
    bool release = false;
    {
      absl::MutexLock lock(&mu_);
      closing_ = true;
      outbox_.Close(Outbox::CloseMode::kDrop);
      release = TakeHoldRelease();
    }
    if (release) RemoveHold();
    return;
  }
  on_message_(std::move(in_));
  in_.Clear();
  StartRead(&in_);
}

void CoordinatorStream::OnWriteDone(bool ok) {
  Outbox::AfterWrite next;
  bool release = false, writes_done = false;
  {
    absl::MutexLock lock(&mu_);
    // On a broken stream what is queued is dropped: the agent resends from the
    // acknowledged offsets after reconnecting.
    next = outbox_.OnWriteDone(ok);
    if (next.end && ok && !closing_) {
      // Drained after CloseSend(): the writes-done is the next write.
      writes_done_in_flight_ = true;
      writes_done = true;
    } else {
      release = TakeHoldRelease();
    }
  }
  if (release) RemoveHold();
  if (writes_done) StartWritesDone();
  if (next.write != nullptr) StartWrite(next.write);
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
  CallEnd end = ClassifyCallEnd(status, context_.GetServerTrailingMetadata());
  self_.reset();
  on_end(status, std::move(end));
}

}  // namespace musafarm::agent
