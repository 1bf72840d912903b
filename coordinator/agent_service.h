#pragma once

#include "common/event_loop.h"
#include "coordinator/core.h"
#include "musafarm/v1/agent_service.grpc.pb.h"

namespace musafarm::coordinator {

// gRPC adapter for AgentService.Connect: one callback reactor per agent stream,
// no thread per agent. Reactions only decode and post to the core loop.
class AgentServiceImpl final : public v1::AgentService::CallbackService {
 public:
  AgentServiceImpl(EventLoop* loop, Core* core) : loop_(loop), core_(core) {}

  grpc::ServerBidiReactor<v1::AgentMessage, v1::CoordinatorMessage>* Connect(
      grpc::CallbackServerContext* context) override;

 private:
  EventLoop* const loop_;  // not owned; outlives the server
  Core* const core_;       // not owned; used only on loop_
};

}  // namespace musafarm::coordinator
