#pragma once

// API tokens: what a user presents on every call (`authorization: Bearer
// ...`). The text form is "mfu1.<id>.<secret>": `id` (16 lowercase hex chars)
// finds the stored row and may be shown, listed and logged; `secret` (32
// random bytes, base64url without padding) is shown once when the token is
// made and never stored or logged: the store keeps a salted SHA-256 of it.

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "coordinator/store.h"

namespace musafarm::coordinator {

inline constexpr absl::string_view kApiTokenPrefix = "mfu1";

struct ParsedApiToken {
  std::string id;
  std::string secret;
};

// Splits a token's text. INVALID_ARGUMENT, never quoting the secret, when it
// is not of the form above.
absl::StatusOr<ParsedApiToken> ParseApiToken(absl::string_view token);

// Whether `token` looks like a token id (as `token revoke ID|NAME` must tell).
bool IsApiTokenId(absl::string_view token);

// A user name: 1 to 64 characters of [A-Za-z0-9._@-]. INVALID_ARGUMENT
// saying what is wrong otherwise.
absl::Status ValidateUserName(absl::string_view name);

struct NewApiToken {
  std::string text;  // "mfu1.<id>.<secret>": give it to the user, then forget it
  ApiToken row;      // what the store keeps
};

// A fresh token for `user` with `role` ("viewer", "submitter", "admin"), made
// by `created_by` at `now`, good until now + ttl (absl::InfiniteDuration():
// until revoked). INVALID_ARGUMENT for a bad user name or a ttl <= 0.
absl::StatusOr<NewApiToken> MakeApiToken(absl::string_view user, absl::string_view role,
                                         absl::Duration ttl, absl::string_view created_by,
                                         absl::Time now);

// Whether `secret` is the one `row` was made with (constant-time comparison).
bool ApiTokenSecretMatches(const ApiToken& row, absl::string_view secret);

}  // namespace musafarm::coordinator
