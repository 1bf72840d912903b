#pragma once

// Failover between two coordinators on one PostgreSQL database (issue 20,
// "Accepted when"), through the real binaries: what FailoverE2eTest (an exec
// matrix) and FailoverDockerE2eTest (the Docker fixture matrix) share. Two
// coordinators on a fresh database of the run's private PostgreSQL (the
// `postgres` ctest fixture), two agents and the CLI given both addresses, a
// job whose tasks print known lines ("mf-line ...") slowly enough to be
// mid-job. While a task prints them, and a `musafarm logs -f` follows it, the
// active coordinator is (a) SIGKILLed, (b) cut off from PostgreSQL through a
// relay the test controls (tests/faults/tcp_proxy.h). Either way the standby
// takes over (the time is printed, not asserted), the job succeeds, every
// task ends exactly once, run by one attempt (read from the database), and
// every stored log holds each line its task wrote exactly once, in order:
// what the `logs -f` that followed the failover printed too.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "musafarm/v1/user_service.pb.h"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {

// Generous limits on conditions (scripts/asan-test.sh runs these too, slower,
// beside the whole suite); the figures are printed, never asserted.
inline constexpr absl::Duration kFailoverSlow = absl::Seconds(120);

// The lines of `log` that a task wrote (from its marker "mf-line " on; a
// builder may prefix them), in order.
std::vector<std::string> MarkedLines(const std::string& log);

// An agent of a failover run; it is given every coordinator's address.
struct FailoverAgent {
  std::string name;
  std::vector<std::string> labels;
  int slots = 2;
  std::vector<std::string> flags;
};

// What a failover run submits and what it must leave.
struct FailoverJob {
  std::vector<FailoverAgent> agents;
  std::string pipeline;             // the pipeline file
  std::vector<std::string> flags;   // more `musafarm submit` flags
  int tasks = 0;                    // how many tasks the job has
  // Which running tasks the failure may come during (all by default).
  std::function<bool(const v1::Task&)> fail_during = [](const v1::Task&) { return true; };
  // The known lines task `t` writes, in order.
  std::function<std::vector<std::string>(const v1::Task&)> lines;
};

// A coordinator process of a failover test, on the shared database.
struct Coordinator {
  std::unique_ptr<Process> process;
  int port = 0;
  std::string address() const;
};

class FailoverTest : public ::testing::Test {
 protected:
  void SetUp() override;

  // Issue 20's two runs of `job`. The active is SIGKILLed mid-job (default
  // --leader-timeout: a killed process's session ends with its socket, so the
  // standby's next try of the lock wins).
  void KillTheActiveMidJob(const FailoverJob& job);
  // The active reaches PostgreSQL only through a relay, which stops passing
  // anything mid-job (--leader-timeout 3s), and passes it all on once the
  // standby has taken over; the cut-off coordinator then exits (3), having
  // written nothing.
  void CutTheActiveOffMidJob(const FailoverJob& job);

  Farm farm_;

 private:
  // Starts coordinator `name` (its own data dir) on `store`; waits for its port.
  Coordinator StartCoordinator(const std::string& name, const std::string& store,
                               const std::vector<std::string>& extra = {});
  // Whether `c` answers as the active coordinator.
  static bool IsActive(const Coordinator& c);
  // Per task of `job`, from the database: "terminal transitions|attempts".
  std::map<std::string, std::string> EndsAndAttempts(const std::string& job);
  // Runs `job` on agents given both coordinators, calls `fail` mid-job (it
  // makes the active one go) and `after_takeover` once the standby answers,
  // and checks what the acceptance lines of issue 20 ask.
  void RunFailover(const std::string& what, const FailoverJob& job, Coordinator& active,
                   Coordinator& standby, const std::function<void()>& fail,
                   const std::function<void()>& after_takeover);

  std::string url_;
  std::string database_;
  std::string pg_dir_;
};

}  // namespace musafarm::e2e
