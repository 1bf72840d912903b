#pragma once

#include <atomic>
#include <cstdint>

#include "common/event_loop.h"
#include "coordinator/agent_event_sink.h"
#include "coordinator/enrollment_api.h"
#include "musafarm/v1/agent_service.grpc.pb.h"

namespace musafarm::coordinator {

// gRPC adapter for AgentService.Connect: one callback reactor per agent stream,
// no thread per agent. Reactions only decode and post to `loop`, where `sink`
// hears of them; knows nothing of what the sink does with them.
//
// With `agent_ca_pem` (TLS mode) a stream is admitted only when the peer
// presented a client certificate that chains to that bundle; the verified
// AgentIdentity then travels with its AgentConnection. Any other stream is
// finished at once with UNAUTHENTICATED and the reason, before the sink hears
// of it. Null: --insecure, every stream is admitted without an identity.
//
// Connect is served raw (bytes, decoded here) so that a message that does not
// decode ends the stream with INVALID_ARGUMENT: with the typed method gRPC
// reports it as a failed read, like a half-close, and the stream ended OK.
// Every decoded message is checked by ValidateAgentMessage before it is posted.
//
// Read backpressure: a stream whose messages wait on the loop (read, posted,
// not yet delivered) holding more than kPauseReadsAt bytes is read no further
// until the loop has delivered it down to kResumeReadsAt; HTTP/2 flow control
// then stops the agent. An honest agent never gets there (it keeps at most a
// 4 MiB log window unacknowledged), but one that ignores its window, or a loop
// stalled on a slow disk, would otherwise queue without bound in memory.
struct AgentStreamStats {
  std::atomic<uint64_t> read_pauses{0};             // times a stream stopped reading
  std::atomic<uint64_t> peak_undelivered_bytes{0};  // over all streams, each on its own
};

class AgentServiceImpl final
    : public v1::AgentService::WithRawCallbackMethod_Connect<
          v1::AgentService::WithCallbackMethod_Enroll<
              v1::AgentService::WithCallbackMethod_RenewCertificate<v1::AgentService::Service>>> {
 public:
  //
  // Enroll and RenewCertificate are answered by `enrollment` on `loop` (null:
  // UNIMPLEMENTED). Renewal hands it the certificate the caller's handshake
  // presented, which it verifies; Enroll needs none.
  AgentServiceImpl(EventLoop* loop, AgentEventSink* sink, const std::string* agent_ca_pem = nullptr,
                   EnrollmentApi* enrollment = nullptr)
      : loop_(loop), sink_(sink), agent_ca_pem_(agent_ca_pem), enrollment_(enrollment) {}

  static constexpr uint64_t kPauseReadsAt = 8 << 20;
  static constexpr uint64_t kResumeReadsAt = 2 << 20;

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Connect(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* context,
                                   const v1::EnrollRequest* request,
                                   v1::EnrollResponse* response) override;
  grpc::ServerUnaryReactor* RenewCertificate(grpc::CallbackServerContext* context,
                                             const v1::RenewCertificateRequest* request,
                                             v1::RenewCertificateResponse* response) override;

  const AgentStreamStats& stream_stats() const { return stats_; }

 private:
  EventLoop* const loop_;       // not owned; outlives the server
  AgentEventSink* const sink_;  // not owned; used only on loop_
  const std::string* const agent_ca_pem_;  // not owned; null in --insecure mode
  EnrollmentApi* const enrollment_;        // not owned; used only on loop_
  AgentStreamStats stats_;
};

}  // namespace musafarm::coordinator
