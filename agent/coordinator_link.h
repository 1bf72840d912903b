#pragma once

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "musafarm/v1/agent_service.pb.h"

namespace musafarm::content {
class BlobSource;
}

namespace musafarm::agent {

// One connection to the coordinator, from the agent's side: what the agent
// writes to it. Thread-safe. After the end (CoordinatorLink's on_end) every
// call is a harmless no-op.
class CoordinatorSession {
 public:
  virtual ~CoordinatorSession() = default;
  // Queues `msg`; messages go out in order. Dropped once the session ends or
  // CloseSend() was called.
  virtual void Send(v1::AgentMessage msg) = 0;
  // Half-closes: once everything queued is out, tells the coordinator that
  // nothing more comes; the coordinator ends the session (OK) after reading
  // it all, so that end confirms delivery. Idempotent.
  virtual void CloseSend() = 0;
  // Ends the session now, dropping what is queued; on_end follows.
  virtual void Cancel() = 0;
};

// How the agent reaches its coordinator: the seam between the agent's logic
// (Agent) and the transport. GrpcCoordinatorLink is the real one (the only
// agent code that includes gRPC); tests use FakeCoordinatorLink
// (tests/fakes/fake_coordinator_link.h), which needs no channel.
class CoordinatorLink {
 public:
  // Called from the link's own threads: they must not block and must not call
  // back into the session (post to a loop instead), unless the link says
  // OnMessageMaySend().
  using OnMessage = std::function<void(v1::CoordinatorMessage msg)>;
  using OnEnd = std::function<void(absl::Status why)>;

  virtual ~CoordinatorLink() = default;
  // Connects anew: `on_message` for each message the coordinator sends, then
  // `on_end` exactly once when the session is over (OK after a CloseSend()
  // the coordinator answered; the transport's error otherwise). The first
  // message the agent sends must be its Register. Sessions may overlap only
  // while an old one is ending.
  virtual std::shared_ptr<CoordinatorSession> Open(OnMessage on_message, OnEnd on_end) = 0;
  // Whether on_message may call the session's Send and take a moment: the
  // link holds no lock of its own while it delivers, and reads the next
  // message only once on_message returns. The agent then starts an exec
  // assignment on the thread that read it when its loop is idle (issue 19).
  virtual bool OnMessageMaySend() const { return false; }
  // Where it connects, for the log (e.g. "10.0.0.5:7070").
  virtual std::string Target() const = 0;
  // The coordinator's content store, read over this link's channel (issue 17:
  // job inputs fetched by digest); null when the link has none (fakes).
  // Thread-safe; lives as long as the link.
  virtual content::BlobSource* blobs() { return nullptr; }
};

}  // namespace musafarm::agent
