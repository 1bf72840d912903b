#pragma once

// musafarm-coordinator probe: asks a coordinator's HTTP port whether it is
// ready (GET /readyz) and says so by exit code, for health checks that run a
// command (Docker and compose) in an image that has no curl. Kubernetes asks
// the same routes itself (httpGet probes).

#include <ostream>
#include <string>

#include "absl/time/time.h"

namespace musafarm::coordinator {

struct ProbeOptions {
  // http://HOST:PORT[/PATH] or https://HOST:PORT[/PATH]; PATH defaults to /readyz.
  std::string url = "http://127.0.0.1:8080/readyz";
  // For https: the CA bundle to verify the coordinator's certificate with.
  // Empty: not verified, as Kubernetes' httpGet probes do not verify either (a
  // probe asks a process on its own host whether it serves; it sends nothing
  // secret and trusts nothing it reads).
  std::string ca_file;
  absl::Duration timeout = absl::Seconds(5);
};

// Exit codes: 0 the route answered 200; 1 it answered something else (e.g.
// 503 while recovering), printed with the first line of its body; 2 a
// malformed URL or unreadable CA file; 3 nothing answered (refused, timed
// out, TLS handshake failed). One line on `out` (0) or `err` (others).
int RunProbe(const ProbeOptions& options, std::ostream& out, std::ostream& err);

}  // namespace musafarm::coordinator
