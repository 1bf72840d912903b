#include "common/peer_compat.h"

#include "common/stage_kind.h"

namespace musafarm {

v1::AttemptOutcome LegacyOutcome(const v1::AttemptResult& result) {
  if (result.cancelled()) return v1::ATTEMPT_OUTCOME_CANCELLED;
  if (result.timed_out()) return v1::ATTEMPT_OUTCOME_TIMED_OUT;
  if (!result.error().empty()) return v1::ATTEMPT_OUTCOME_ERROR;
  if (result.exit_code() == 0 && result.signal() == 0) return v1::ATTEMPT_OUTCOME_SUCCEEDED;
  return v1::ATTEMPT_OUTCOME_FAILED;
}

v1::AttemptOutcome OutcomeOf(const v1::AttemptResult& result) {
  if (result.outcome() != v1::ATTEMPT_OUTCOME_UNSPECIFIED &&
      v1::AttemptOutcome_IsValid(result.outcome())) {
    return result.outcome();
  }
  return LegacyOutcome(result);
}

bool ShuttingDown(const v1::Heartbeat& heartbeat) {
  return heartbeat.shutting_down() || heartbeat.unavailable_reason() == kShuttingDownText;
}

bool ShuttingDown(const v1::Capabilities& capabilities) {
  return capabilities.shutting_down() || capabilities.unavailable_reason() == kShuttingDownText;
}

namespace {

template <typename Enums, typename Names>
std::vector<v1::StageKind> KindsOrNames(const Enums& enums, const Names& names) {
  std::vector<v1::StageKind> kinds;
  if (!enums.empty()) {
    for (int kind : enums) {
      if (kind != v1::STAGE_KIND_UNSPECIFIED && v1::StageKind_IsValid(kind)) {
        kinds.push_back(static_cast<v1::StageKind>(kind));
      }
    }
    return kinds;
  }
  for (const std::string& name : names) {
    const v1::StageKind kind = StageKindFromName(name);
    if (kind != v1::STAGE_KIND_UNSPECIFIED) kinds.push_back(kind);
  }
  return kinds;
}

}  // namespace

std::vector<v1::StageKind> ExecutorKinds(const v1::Capabilities& capabilities) {
  return KindsOrNames(capabilities.executor_kinds(), capabilities.executors());
}

std::vector<v1::StageKind> ExecutorKinds(const v1::Agent& agent) {
  return KindsOrNames(agent.executor_kinds(), agent.executors());
}

void SetExecutorKinds(const std::vector<v1::StageKind>& kinds, v1::Capabilities* capabilities) {
  capabilities->clear_executor_kinds();
  capabilities->clear_executors();
  for (v1::StageKind kind : kinds) {
    capabilities->add_executor_kinds(kind);
    capabilities->add_executors(StageKindName(kind));
  }
}

}  // namespace musafarm
