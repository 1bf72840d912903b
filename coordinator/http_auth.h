#pragma once

// Who an HTTP request is: the same tokens and roles as the gRPC API
// (AccessControl), taken from `Authorization: Bearer` or the dashboard's
// session cookie. The one place HTTP routes authenticate, so every route
// checks the same way.

#include <string>

#include "absl/status/statusor.h"
#include "coordinator/access_control.h"
#include "httplib.h"

namespace musafarm::coordinator {

inline constexpr char kSessionCookie[] = "mf_session";

// The bearer token of `req`: the Authorization header, else the session cookie; "" if none.
std::string BearerOf(const httplib::Request& req);

// Authenticates `req` and authorizes `action` (owner: see AccessControl).
// UNAUTHENTICATED / PERMISSION_DENIED with AccessControl's message.
absl::StatusOr<Principal> Check(const AccessControl& access, const httplib::Request& req,
                                Action action, const std::string& owner = "");

// Writes `s` as a plain-text error with the matching HTTP status (401, 403,
// 400, 404, 503, 500).
void WriteError(httplib::Response& res, const absl::Status& s);

}  // namespace musafarm::coordinator
