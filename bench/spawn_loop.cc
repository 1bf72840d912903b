// The machine's limit for no-op tasks: spawns `/bin/true` N times keeping P
// processes in flight (posix_spawn, waitpid), the way a farm with P slots
// would if it cost nothing. bench/run.sh divides musafarm's dispatch rate by
// this one, measured in the same run.
//
//   build/bench/spawn_loop N P    -> prints "<N> <seconds>"
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

extern char** environ;

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: spawn_loop N P\n");
    return 2;
  }
  const long n = std::atol(argv[1]);
  const long p = std::atol(argv[2]);
  if (n <= 0 || p <= 0) {
    std::fprintf(stderr, "spawn_loop: N and P must be positive\n");
    return 2;
  }
  char prog[] = "/bin/true";
  char* args[] = {prog, nullptr};
  const auto start = std::chrono::steady_clock::now();
  long started = 0, done = 0;
  while (done < n) {
    while (started < n && started - done < p) {
      pid_t pid;
      if (posix_spawn(&pid, prog, nullptr, nullptr, args, environ) != 0) {
        std::perror("posix_spawn");
        return 1;
      }
      ++started;
    }
    int status;
    if (::wait(&status) < 0) {
      std::perror("wait");
      return 1;
    }
    ++done;
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("%ld %.6f\n", n, took.count());
  return 0;
}
