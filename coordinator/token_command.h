#pragma once

// `musafarm-coordinator token create|list`: host commands on the data
// directory's store, beside a running coordinator (which reads API tokens from
// the store at every call, so a token made here works at once). This is how
// the first admin token is made.

#include <ostream>
#include <string>

#include "absl/time/time.h"

namespace musafarm::coordinator {

struct TokenCommandOptions {
  std::string data_dir = "musafarm-data";
  std::string store;  // the coordinator's --store; empty: SQLite in data_dir
  std::string user;                                 // the token's user (NAME)
  std::string role = "viewer";
  absl::Duration ttl = absl::InfiniteDuration();    // --expires; infinite: until revoked
  std::string operator_name;                        // who runs the command, for the audit log
};

// Makes a token, stores its hash (audited as made by "host:<operator>") and
// prints it once. Returns the exit code: 0; 1 when the store fails; 2 for a
// bad name or role or a data dir without a store (said on `err`).
int RunTokenCreate(const TokenCommandOptions& options, absl::Time now, std::ostream& out,
                   std::ostream& err);

// Lists every token (never a secret): id, user, role, state, expiry, maker.
int RunTokenList(const TokenCommandOptions& options, absl::Time now, std::ostream& out,
                 std::ostream& err);

}  // namespace musafarm::coordinator
