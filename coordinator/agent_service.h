#pragma once

#include "common/event_loop.h"
#include "coordinator/agent_event_sink.h"
#include "musafarm/v1/agent_service.grpc.pb.h"

namespace musafarm::coordinator {

// gRPC adapter for AgentService.Connect: one callback reactor per agent stream,
// no thread per agent. Reactions only decode and post to `loop`, where `sink`
// hears of them; knows nothing of what the sink does with them.
class AgentServiceImpl final : public v1::AgentService::CallbackService {
 public:
  AgentServiceImpl(EventLoop* loop, AgentEventSink* sink) : loop_(loop), sink_(sink) {}

  grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>* Connect(
      grpc::CallbackServerContext* context) override;

 private:
  EventLoop* const loop_;       // not owned; outlives the server
  AgentEventSink* const sink_;  // not owned; used only on loop_
};

}  // namespace musafarm::coordinator
