#pragma once

// `musafarm-coordinator ca init`: makes the farm's CA and the coordinator's
// server certificate, the TLS material the coordinator serves with
// (coordinator/tls_material.h).

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace musafarm::coordinator {

struct CaInitOptions {
  std::string data_dir;           // the coordinator's --data-dir
  std::string tls_dir;            // where to write; empty: <data_dir>/pki
  std::vector<std::string> sans;  // host names and IPs of the server certificate; empty:
                                  // localhost, 127.0.0.1, ::1 and this host's name
  int days = 3650;                // how long the CA and the server certificate are valid
};

// Writes ca.key, ca.crt, server.key and server.crt (keys 0600) into the TLS
// directory and says on `out` what was made and what to do next. Refuses
// (FailedPrecondition) when a CA is already there: a new one would orphan
// every agent certificate the old one signed.
absl::Status CaInit(const CaInitOptions& options, std::ostream& out);

}  // namespace musafarm::coordinator
