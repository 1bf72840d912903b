#pragma once

#include <string>

#include "musafarm/v1/farm.pb.h"

namespace musafarm {

// A task that ended: it never changes state again.
bool IsTerminal(v1::TaskState s);

// A task whose current attempt an agent holds (assigned or running).
bool IsActive(v1::TaskState s);

// The state as users read it: the enum name without "TASK_STATE_", lower
// case ("queued", "timed_out"); "unknown(N)" for a value this build lacks.
std::string TaskStateName(v1::TaskState s);

}  // namespace musafarm
