#pragma once

// `musafarm-coordinator join-token create|list`: host commands that work on the
// data directory's store directly, beside a running coordinator (which reads
// tokens from the store at each Enroll and keeps no copy).

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/time/time.h"

namespace musafarm::coordinator {

struct JoinTokenCommandOptions {
  std::string data_dir = "musafarm-data";
  std::string store;  // the coordinator's --store; empty: SQLite in data_dir
  std::string tls_dir;        // empty: <data_dir>/pki; its ca.crt gives the CA pin
  std::string coordinator;    // for the printed enroll command; empty: <hostname>:7070
  int64_t uses = 1;
  absl::Duration ttl = absl::Hours(1);
  std::string description;
};

// Makes a token, stores it and prints it once with the exact `musafarm-agent
// enroll` command (with the CA pin). Returns the exit code: 0, 1 on failure
// (said on `err`), 2 for bad options.
int RunJoinTokenCreate(const JoinTokenCommandOptions& options, absl::Time now, std::ostream& out,
                       std::ostream& err);

// Lists every token (never a secret): id, uses left, expiry, state, description.
int RunJoinTokenList(const JoinTokenCommandOptions& options, absl::Time now, std::ostream& out,
                     std::ostream& err);

}  // namespace musafarm::coordinator
