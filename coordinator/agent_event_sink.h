#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "musafarm/v1/agent_service.pb.h"

namespace musafarm::coordinator {

// Who an agent stream's TLS client certificate says it is, once the transport
// has verified the chain against the farm's CA bundle (the handshake proved the
// peer holds the certificate's key). There is none in --insecure mode.
struct AgentIdentity {
  std::string name;         // the certificate's CN: the only name it may register as
  std::string serial_hex;   // lowercase hex, as pki::CertInfo has it
  std::string fingerprint;  // "sha256:" + hex of the DER certificate
  absl::Time not_after;
};

// The coordinator's side of one agent stream. Implemented by the gRPC adapter
// (AgentStream) and by fakes in tests. Both methods are thread-safe and never block.
class AgentConnection {
 public:
  virtual ~AgentConnection() = default;
  virtual void Send(v1::CoordinatorMessage msg) = 0;
  // Ends the stream; the transport later reports OnAgentGone.
  virtual void Close(const absl::Status& why) = 0;
  virtual std::string Peer() const = 0;
  // The verified identity of the peer, or null when the stream is not
  // authenticated (--insecure mode; fakes). Fixed for the stream's life.
  virtual const AgentIdentity* Identity() const { return nullptr; }
};

// Where the agent transport delivers what happens on agent streams: the seam
// between AgentServiceImpl (gRPC) and the core, which implements it. Transport
// tests fake it. Every call is made on the core EventLoop, in the order the
// stream saw the events (the transport's reactions only decode and post), so an
// implementation needs no locks; it must not block, since every stream and
// timer shares that loop.
class AgentEventSink {
 public:
  using ConnId = uint64_t;

  virtual ~AgentEventSink() = default;

  // A stream opened. The id names it in the calls below; `conn` stays usable
  // (as a no-op once the stream ended) for as long as the sink holds it.
  virtual ConnId OnAgentConnected(std::shared_ptr<AgentConnection> conn) = 0;
  // One message the agent sent, in stream order.
  virtual void OnAgentMessage(ConnId conn, const v1::AgentMessage& msg) = 0;
  // The stream ended: the agent half-closed, it broke, or Close() was called.
  // The last call naming `conn`.
  virtual void OnAgentGone(ConnId conn) = 0;
};

}  // namespace musafarm::coordinator
