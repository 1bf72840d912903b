// musafarm: the command-line client of a musafarm coordinator.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "cli/app.h"

int main(int argc, char** argv) {
  // As in the coordinator (coordinator/main.cc): Debian's Abseil keeps Mutex
  // deadlock detection on, and gRPC's start-up takes enough locks that the
  // lock graph showed in a profile of `musafarm jobs` (issue 19).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  std::ios::sync_with_stdio(false);
  musafarm::cli::CommandEnv env;
  env.out = &std::cout;
  env.err = &std::cerr;
  // The live view needs cursor movement, which a dumb terminal lacks.
  const char* term = std::getenv("TERM");
  env.tty = isatty(STDOUT_FILENO) == 1 && !(term != nullptr && std::strcmp(term, "dumb") == 0);
  const int code = musafarm::cli::RunCli(argc, argv, env);
  std::cout.flush();
  return code;
}
