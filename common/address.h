#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
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

// A list of coordinator addresses as a user gives it (issue 20: an active
// coordinator and its standbys): "a:7070,b:7070", spaces around entries
// ignored. Each entry is checked as ValidateAddress does; a bad one is
// InvalidArgument naming `what`, the entry's position and what is wrong
// ("--coordinator entry 2 'b:x': port 'x' is not a number"). An empty list or
// an empty entry ("a:1,,b:1") is refused too. Repeats are dropped (the first
// stays), so the order given is the order tried.
absl::StatusOr<std::vector<std::string>> ParseAddressList(absl::string_view what,
                                                          absl::string_view list);

}  // namespace musafarm
