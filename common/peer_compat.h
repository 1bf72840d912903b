#pragma once

#include <vector>

#include "musafarm/v1/agent_service.pb.h"
#include "musafarm/v1/farm.pb.h"

// The fields issue 9 added to the agent protocol beside older ones, read with
// their fallback for peers from before them, and written together with the
// old fields that old peers read (docs/protocol.md, "Compatibility"). Every
// reader of these fields goes through here, so the fallback lives in one place.
namespace musafarm {

// What old agents send, and old coordinators match, while an agent stops.
inline constexpr char kShuttingDownText[] = "shutting down";

// The outcome the old fields say: cancelled, else timed_out, else a non-empty
// error, else exit code 0 and no signal (SUCCEEDED) or not (FAILED). The
// order is that in which the coordinator always read them.
v1::AttemptOutcome LegacyOutcome(const v1::AttemptResult& result);

// `outcome`, or LegacyOutcome for an agent that did not set it (UNSPECIFIED)
// or set a value this build does not know (a newer agent).
v1::AttemptOutcome OutcomeOf(const v1::AttemptResult& result);

// The agent is stopping: `shutting_down`, or for an older agent the exact
// text "shutting down" in unavailable_reason.
bool ShuttingDown(const v1::Heartbeat& heartbeat);
bool ShuttingDown(const v1::Capabilities& capabilities);

// The stage kinds an agent runs: `executor_kinds`, or for an older agent the
// names in `executors` (names this build does not know are left out). Empty
// when it lists none, which placement reads as "exec" only.
std::vector<v1::StageKind> ExecutorKinds(const v1::Capabilities& capabilities);
// The same for an agent row, which a coordinator from before executor_kinds
// stored with the names only.
std::vector<v1::StageKind> ExecutorKinds(const v1::Agent& agent);

// Lists `kinds` in both fields: executor_kinds, and their names in executors.
void SetExecutorKinds(const std::vector<v1::StageKind>& kinds, v1::Capabilities* capabilities);

}  // namespace musafarm
