#pragma once

// Join tokens: what an operator hands a new agent so that it may enrol once
// (or N times) before an expiry. The text form is "mfj1.<id>.<secret>": `id`
// (8 lowercase hex chars) finds the stored row and may be shown and logged;
// `secret` (32 random bytes, base64url without padding) is shown once when the
// token is made and never stored or logged: the store keeps a salted SHA-256.

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "coordinator/store.h"

namespace musafarm::coordinator {

inline constexpr absl::string_view kJoinTokenPrefix = "mfj1";

struct ParsedJoinToken {
  std::string id;
  std::string secret;
};

// Splits a token's text. INVALID_ARGUMENT, never quoting the secret, when it
// is not of the form above.
absl::StatusOr<ParsedJoinToken> ParseJoinToken(absl::string_view token);

struct NewJoinToken {
  std::string text;  // "mfj1.<id>.<secret>": give it to the agent, then forget it
  JoinToken row;     // what the store keeps
};

// A fresh token with a random id and secret, good for `uses` enrolments until
// now + ttl. INVALID_ARGUMENT when uses < 1 or ttl <= 0.
absl::StatusOr<NewJoinToken> MakeJoinToken(int64_t uses, absl::Duration ttl,
                                           std::string description, absl::Time now);

// Whether `secret` is the one `row` was made with (constant-time comparison).
bool JoinTokenSecretMatches(const JoinToken& row, absl::string_view secret);

}  // namespace musafarm::coordinator
