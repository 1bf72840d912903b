#pragma once

#include <functional>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/coordinator_targets.h"
#include "common/stream_outbox.h"
#include "grpcpp/grpcpp.h"
#include "musafarm/v1/agent_service.grpc.pb.h"

namespace musafarm::agent {

// The agent's end of AgentService.Connect: a client callback reactor. One read
// and at most one write in flight. Callbacks run on gRPC threads and must only
// post to the agent's loop. Owned through a shared_ptr that the stream itself
// holds until OnDone, so Send() after the end is a harmless no-op.
class CoordinatorStream final
    : public grpc::ClientBidiReactor<v1::AgentMessage, v1::CoordinatorMessage> {
 public:
  using OnMessage = std::function<void(v1::CoordinatorMessage)>;
  // The stream's status and the server's trailing metadata read as
  // common/coordinator_targets.h does (a standby's hint, if any).
  using OnEnd = std::function<void(grpc::Status, CallEnd)>;

  static std::shared_ptr<CoordinatorStream> Open(v1::AgentService::Stub* stub, OnMessage on_message,
                                                 OnEnd on_end);

  void Send(v1::AgentMessage msg);  // thread-safe
  void Cancel();                    // thread-safe; OnEnd follows
  // Half-closes: once everything queued is written, tells the coordinator
  // that nothing more comes. The coordinator then ends the stream (OK) after
  // reading it all, so that end confirms delivery. Later Sends are dropped.
  // Thread-safe; idempotent.
  void CloseSend();

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnWritesDoneDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  CoordinatorStream(OnMessage on_message, OnEnd on_end)
      : on_message_(std::move(on_message)), on_end_(std::move(on_end)) {}

  using Outbox = StreamOutbox<v1::AgentMessage>;

  // Whether the hold may go now: reads have failed and nothing is in flight.
  // Marks it released, so it goes once.
  bool TakeHoldRelease() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  grpc::ClientContext context_;
  OnMessage on_message_;
  OnEnd on_end_;
  v1::CoordinatorMessage in_;
  std::shared_ptr<CoordinatorStream> self_;
  absl::Mutex mu_;
  // Closed by CloseSend() (drained, then the writes-done) or when reads fail.
  Outbox outbox_ ABSL_GUARDED_BY(mu_);
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;  // reads have failed
  bool writes_done_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool hold_released_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace musafarm::agent
