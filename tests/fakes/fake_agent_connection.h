#pragma once

#include <optional>
#include <string>
#include <vector>

#include "coordinator/agent_event_sink.h"

namespace musafarm::testing {

// Records what the core sends to one agent. Not thread-safe: tests drive the
// core from one thread.
class FakeAgentConnection final : public coordinator::AgentConnection {
 public:
  void Send(v1::CoordinatorMessage msg) override { sent.push_back(std::move(msg)); }
  void Close(const absl::Status& why) override { closed = why; }
  std::string Peer() const override { return peer; }
  const coordinator::AgentIdentity* Identity() const override {
    return identity.has_value() ? &*identity : nullptr;
  }

  std::vector<v1::Assignment> TakeAssignments() {
    std::vector<v1::Assignment> out;
    for (const auto& m : sent) {
      if (m.has_assignment()) out.push_back(m.assignment());
    }
    sent.clear();
    return out;
  }
  bool SawCancel(const std::string& task, uint64_t attempt) const {
    for (const auto& m : sent) {
      if (m.has_cancel() && m.cancel().task_id() == task && m.cancel().attempt_id() == attempt) {
        return true;
      }
    }
    return false;
  }

  std::string peer = "fake";
  std::optional<coordinator::AgentIdentity> identity;  // none: an --insecure stream
  std::vector<v1::CoordinatorMessage> sent;
  absl::Status closed = absl::OkStatus();
};

}  // namespace musafarm::testing
