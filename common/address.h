#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace musafarm {

// Checks a gRPC address a user typed (--coordinator, --listen) before any
// channel or server sees it: gRPC takes "127.0.0.1:99999" as port 34463 (it
// wraps), "127.0.0.1" as port 0, and reports a malformed address only as an
// unreachable peer (issue 12). Accepted: HOST:PORT, [IPV6]:PORT, an optional
// "dns:///" in front, and "unix:PATH" / "unix:///PATH". PORT is 1..65535, or
// also 0 when `allow_port_zero` (a server picking a free port).
// InvalidArgument names the flag (`what`), the address and what is wrong.
absl::Status ValidateAddress(absl::string_view what, absl::string_view address,
                             bool allow_port_zero = false);

}  // namespace musafarm
