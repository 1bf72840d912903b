#include "coordinator/agent_messages.h"

#include "absl/strings/str_cat.h"
#include "common/bounded_text.h"
#include "common/limits.h"
#include "common/status_macros.h"

namespace musafarm::coordinator {
namespace {

// Test ids one result may list: a large pytest suite's, not more.
constexpr int kMaxTestIds = 200000;
// An error text or reason: a few lines, never a log.
constexpr size_t kMaxErrorBytes = 64 << 10;

absl::Status Bounded(absl::string_view what, absl::string_view value, size_t max_bytes) {
  if (value.size() <= max_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(what, ": is ", value.size(), " bytes; the limit is ", max_bytes));
}

absl::Status Count(absl::string_view what, int n, size_t max) {
  if (n >= 0 && static_cast<size_t>(n) <= max) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", n, " given; the limit is ", max));
}

// Host health (issue 16, item 3), in a registration and in every heartbeat.
template <typename M>
absl::Status ValidateHostHealth(absl::string_view what, const M& m) {
  MF_RETURN_IF_ERROR(Count(absl::StrCat(what, ": unavailable kinds"), m.unavailable_kinds_size(),
                           limits::kMaxAgentExecutors));
  MF_RETURN_IF_ERROR(Bounded(absl::StrCat(what, ": kinds_unavailable_reason"),
                             m.kinds_unavailable_reason(), limits::kMaxAgentTextBytes));
  MF_RETURN_IF_ERROR(Count(absl::StrCat(what, ": fenced gpus"), m.fenced_gpus_size(),
                           static_cast<size_t>(limits::kMaxAgentGpus)));
  return Bounded(absl::StrCat(what, ": gpu_fence_reason"), m.gpu_fence_reason(),
                 limits::kMaxAgentTextBytes);
}

absl::Status ValidateRegister(const v1::Register& reg) {
  MF_RETURN_IF_ERROR(CheckName("register: name", reg.name(), limits::kMaxNameBytes));
  if (reg.name().empty()) return absl::InvalidArgumentError("register: name: empty");
  MF_RETURN_IF_ERROR(Count("register: labels", reg.labels_size(), limits::kMaxLabels));
  for (const std::string& label : reg.labels()) {
    MF_RETURN_IF_ERROR(CheckName("register: label", label, limits::kMaxLabelBytes));
  }
  if (reg.slots() < 0 || reg.slots() > limits::kMaxAgentSlots) {
    return absl::InvalidArgumentError(absl::StrCat("register: slots: ", reg.slots(),
                                                   " is outside 0..", limits::kMaxAgentSlots));
  }
  const v1::Capabilities& caps = reg.capabilities();
  if (caps.gpus() < 0 || caps.gpus() > limits::kMaxAgentGpus) {
    return absl::InvalidArgumentError(absl::StrCat("register: gpus: ", caps.gpus(),
                                                   " is outside 0..", limits::kMaxAgentGpus));
  }
  MF_RETURN_IF_ERROR(Count("register: executors", caps.executors_size(), limits::kMaxAgentExecutors));
  MF_RETURN_IF_ERROR(
      Count("register: executor kinds", caps.executor_kinds_size(), limits::kMaxAgentExecutors));
  for (const std::string& e : caps.executors()) {
    MF_RETURN_IF_ERROR(CheckName("register: executor", e, limits::kMaxNameBytes));
  }
  MF_RETURN_IF_ERROR(CheckName("register: gpu_vendor", caps.gpu_vendor(), limits::kMaxNameBytes));
  MF_RETURN_IF_ERROR(Bounded("register: unavailable_reason", caps.unavailable_reason(),
                             limits::kMaxAgentTextBytes));
  MF_RETURN_IF_ERROR(ValidateHostHealth("register", caps));
  MF_RETURN_IF_ERROR(CheckName("register: version", reg.version(), limits::kMaxNameBytes));
  MF_RETURN_IF_ERROR(Bounded("register: instance_secret", reg.instance_secret(), 1024));
  MF_RETURN_IF_ERROR(Count("register: held", reg.held_size(), limits::kMaxHeldAttempts));
  for (const v1::HeldAttempt& held : reg.held()) {
    MF_RETURN_IF_ERROR(Bounded("register: held task_id", held.task_id(), limits::kMaxAgentTextBytes));
  }
  return absl::OkStatus();
}

absl::Status ValidateResult(const v1::AttemptResult& r) {
  MF_RETURN_IF_ERROR(Bounded("result: task_id", r.task_id(), limits::kMaxAgentTextBytes));
  MF_RETURN_IF_ERROR(Bounded("result: error", r.error(), kMaxErrorBytes));
  MF_RETURN_IF_ERROR(Count("result: artifacts", r.artifacts_size(), limits::kMaxHeldAttempts));
  for (const v1::Artifact& a : r.artifacts()) {
    MF_RETURN_IF_ERROR(Bounded("result: artifact name", a.name(), limits::kMaxAgentTextBytes));
    MF_RETURN_IF_ERROR(Bounded("result: artifact source", a.source(), limits::kMaxAgentTextBytes));
  }
  MF_RETURN_IF_ERROR(Count("result: failed tests", r.tests().failed_tests_size(), kMaxTestIds));
  MF_RETURN_IF_ERROR(Count("result: passed tests", r.tests().passed_tests_size(), kMaxTestIds));
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateAgentMessage(const v1::AgentMessage& msg) {
  switch (msg.kind_case()) {
    case v1::AgentMessage::kRegister:
      return ValidateRegister(msg.register_());
    case v1::AgentMessage::kHeartbeat:
      MF_RETURN_IF_ERROR(ValidateHostHealth("heartbeat", msg.heartbeat()));
      return Bounded("heartbeat: unavailable_reason", msg.heartbeat().unavailable_reason(),
                     limits::kMaxAgentTextBytes);
    case v1::AgentMessage::kStarted:
      return Bounded("started: task_id", msg.started().task_id(), limits::kMaxAgentTextBytes);
    case v1::AgentMessage::kLog:
      MF_RETURN_IF_ERROR(Bounded("log: task_id", msg.log().task_id(), limits::kMaxAgentTextBytes));
      return Bounded("log: data", msg.log().data(), limits::kMaxChunkBytes);
    case v1::AgentMessage::kResult:
      return ValidateResult(msg.result());
    case v1::AgentMessage::kArtifact:
      MF_RETURN_IF_ERROR(
          Bounded("artifact: task_id", msg.artifact().task_id(), limits::kMaxAgentTextBytes));
      MF_RETURN_IF_ERROR(
          Bounded("artifact: name", msg.artifact().name(), limits::kMaxAgentTextBytes));
      MF_RETURN_IF_ERROR(Bounded("artifact: data", msg.artifact().data(), limits::kMaxChunkBytes));
      if (msg.artifact().offset() > limits::kMaxArtifactBytes - msg.artifact().data().size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "artifact: '", Printable(msg.artifact().name(), 64), "' goes past the limit of ",
            limits::kMaxArtifactBytes, " bytes per artifact"));
      }
      return absl::OkStatus();
    case v1::AgentMessage::kHandBack:
      MF_RETURN_IF_ERROR(
          Bounded("hand_back: task_id", msg.hand_back().task_id(), limits::kMaxAgentTextBytes));
      return Bounded("hand_back: reason", msg.hand_back().reason(), limits::kMaxAgentTextBytes);
    case v1::AgentMessage::KIND_NOT_SET:
      return absl::InvalidArgumentError("an agent message with no kind set");
  }
  return absl::OkStatus();  // a kind this coordinator does not know: the core says so
}

v1::CoordinatorMessage CancelMessage(const std::string& task_id, uint64_t attempt,
                                     const std::string& reason) {
  v1::CoordinatorMessage msg;
  msg.mutable_cancel()->set_task_id(task_id);
  msg.mutable_cancel()->set_attempt_id(attempt);
  msg.mutable_cancel()->set_reason(reason);
  return msg;
}

v1::CoordinatorMessage AckMessage(const std::string& task_id, uint64_t attempt, uint64_t offset,
                                  bool result_stored, bool resend) {
  v1::CoordinatorMessage msg;
  v1::Ack* ack = msg.mutable_ack();
  ack->set_task_id(task_id);
  ack->set_attempt_id(attempt);
  ack->set_log_offset(offset);
  ack->set_result_stored(result_stored);
  ack->set_resend(resend);
  return msg;
}

v1::CoordinatorMessage PaceMessage(absl::Duration interval) {
  v1::CoordinatorMessage msg;
  msg.mutable_pace()->set_heartbeat_interval_ms(absl::ToInt64Milliseconds(interval));
  return msg;
}

v1::CoordinatorMessage KeepImagesMessage(const std::set<std::string>& images) {
  v1::CoordinatorMessage msg;
  msg.mutable_keep_images()->mutable_images()->Assign(images.begin(), images.end());
  return msg;
}

}  // namespace musafarm::coordinator
