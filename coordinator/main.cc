// musafarm-coordinator: flags -> Coordinator -> wait for SIGTERM/SIGINT.
#include <csignal>
#include <cstdlib>
#include <iostream>

#include "CLI/CLI.hpp"
#include "common/logging.h"
#include "coordinator/coordinator.h"

int main(int argc, char** argv) {
  // Block the stop signals in every thread; main waits for them with sigwait.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  musafarm::coordinator::CoordinatorOptions options;
  std::string log_level = "info";
  double heartbeat_timeout_s = 10, lost_timeout_s = 5, restart_grace_s = 30;
  CLI::App app{"musafarm coordinator: accepts jobs and schedules their tasks onto agents"};
  app.add_option("--listen", options.listen, "host:port to serve gRPC on (port 0: any free port)")
      ->capture_default_str();
  app.add_option("--data-dir", options.data_dir, "directory for the database and task logs")
      ->capture_default_str();
  app.add_option("--port-file", options.port_file, "write the bound port to this file");
  app.add_option("--heartbeat-timeout", heartbeat_timeout_s,
                 "seconds of agent silence before its stream is closed")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option(
         "--agent-lost-timeout", lost_timeout_s,
         "seconds a disconnected agent may take to come back before its tasks are re-queued")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--restart-grace", restart_grace_s,
                 "seconds agents may take to come back after a coordinator restart before the "
                 "attempts they held are re-queued")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  options.core.heartbeat_timeout = absl::Seconds(heartbeat_timeout_s);
  options.core.restart_grace = absl::Seconds(restart_grace_s);
  options.core.agent_lost_timeout = absl::Seconds(lost_timeout_s);
  options.core.heartbeat_interval =
      std::min(absl::Seconds(3), absl::Seconds(heartbeat_timeout_s) / 3);
  musafarm::SetLogLevel(log_level);

  musafarm::coordinator::Coordinator server(options);
  if (absl::Status s = server.Start(); !s.ok()) {
    std::cerr << "musafarm-coordinator: " << s.message() << "\n";
    return absl::IsInvalidArgument(s) ? 2 : 1;
  }
  int sig = 0;
  sigwait(&stop, &sig);
  musafarm::GetLogger("coordinator")->info("signal {}: shutting down", sig);
  server.Shutdown();
  return 0;
}
