// musafarm: the command-line client of a musafarm coordinator.
#include <malloc.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "cli/app.h"
#include "cli/client.h"
#include "cli/command_tree.h"
#include "cli/quick_exit.h"

int main(int argc, char** argv) {
  // One malloc arena for the process. gRPC starts a few threads in every
  // command that connects, and glibc gives each thread that allocates an
  // arena of its own: a 64 MiB reservation mapped, trimmed and its first
  // pages faulted in, per thread, at every start (issue 19). The threads of a
  // CLI allocate little, and tcache serves most of that without the lock.
  mallopt(M_ARENA_MAX, 1);
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
#if !defined(MF_EXIT_CLEANLY)
  // gRPC's start-up (its threads and pollers: ~1 ms, perf trace) runs beside
  // the parse and the command's local work, on a thread of its own, which
  // then connects submit's channel (ConnectAhead); the first channel made
  // finds gRPC started or waits for it (grpc_init is reference counted and
  // serialized). Left running at the exit, like the rest of gRPC (issue 19).
  // Not for --help, --version and completion.
  if (musafarm::cli::MayConnect(argc, argv)) musafarm::cli::StartGrpcAhead();
#endif
  const int code = musafarm::cli::RunCli(argc, argv, env);
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
#if !defined(MF_EXIT_CLEANLY)
  // Everything the command wrote is out, and its files are closed (RunCli's
  // scopes have ended). What a normal exit would add is teardown only: gRPC's
  // channels and threads, protobuf's and our static objects, ~0.5 ms of CPU
  // at every start; and the kernel's teardown of the address space, which the
  // caller would wait for (cli/quick_exit.h, issue 19). Sanitizer builds exit
  // normally, for their leak and race checks.
  musafarm::cli::ExitLeavingTeardown(code);
#endif
  return code;
}
