#include "agent/executor.h"

#include <sys/wait.h>

#include <cerrno>

namespace musafarm::agent {
namespace {
constexpr absl::Duration kRoomPoll = absl::Milliseconds(50);
}  // namespace

void AwaitOutputRoom(ExecCallbacks& cb, const std::function<void()>& tick,
                     const std::function<bool()>& stop_waiting) {
  if (!cb.wait_for_room) return;
  // Neither condition can change without `tick` (stopping) or the caller
  // (reaping), so checking before each wait is enough.
  while (!stop_waiting()) {
    if (cb.wait_for_room(kRoomPoll)) return;
    tick();
  }
}

bool ChildReaped(pid_t pid) {
  siginfo_t info = {};
  // WNOWAIT: look without reaping. ECHILD: no such child any more.
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) != 0 &&
         errno == ECHILD;
}

}  // namespace musafarm::agent
