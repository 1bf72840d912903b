#pragma once

#include <deque>
#include <functional>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
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
  using OnEnd = std::function<void(grpc::Status)>;

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

  grpc::ClientContext context_;
  OnMessage on_message_;
  OnEnd on_end_;
  v1::CoordinatorMessage in_;
  std::shared_ptr<CoordinatorStream> self_;
  absl::Mutex mu_;
  std::deque<v1::AgentMessage> outbox_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
  bool closing_ ABSL_GUARDED_BY(mu_) = false;        // reads have failed
  bool close_send_ ABSL_GUARDED_BY(mu_) = false;     // CloseSend() was called
  bool writes_done_ ABSL_GUARDED_BY(mu_) = false;    // StartWritesDone was called
  bool hold_released_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace musafarm::agent
