#pragma once

// `musafarm-agent enroll`: trades a join token for this agent's certificate
// and writes <work-dir>/pki/{agent.key, agent.crt, ca.crt}.

#include <ostream>
#include <string>
#include <vector>

namespace musafarm::agent {

struct EnrollCommandOptions {
  std::string coordinator;                // as given: HOST:PORT[,HOST:PORT...]
  std::vector<std::string> coordinators;  // its addresses (ParseAddressList)
  std::string token;
  std::string ca_file;      // --ca: trust this CA file...
  std::string ca_pin;       // --ca-pin: ...or the presented certificate with this key pin
  std::string name;         // the agent name; the caller defaults it to the host name
  std::string work_dir;
};

// Returns the exit code: 0 enrolled, 1 refused or failed (said on `err`: a
// bad, expired or used-up token, a pin mismatch, no coordinator), 2 for bad
// options.
int RunEnrollCommand(const EnrollCommandOptions& options, std::ostream& out, std::ostream& err);

}  // namespace musafarm::agent
