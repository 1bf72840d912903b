#pragma once

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

  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Connect(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Enroll(grpc::CallbackServerContext* context,
                                   const v1::EnrollRequest* request,
                                   v1::EnrollResponse* response) override;
  grpc::ServerUnaryReactor* RenewCertificate(grpc::CallbackServerContext* context,
                                             const v1::RenewCertificateRequest* request,
                                             v1::RenewCertificateResponse* response) override;

 private:
  EventLoop* const loop_;       // not owned; outlives the server
  AgentEventSink* const sink_;  // not owned; used only on loop_
  const std::string* const agent_ca_pem_;  // not owned; null in --insecure mode
  EnrollmentApi* const enrollment_;        // not owned; used only on loop_
};

}  // namespace musafarm::coordinator
