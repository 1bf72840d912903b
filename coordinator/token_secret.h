#pragma once

// What join tokens (join_token.h) and API tokens (api_token.h) share: the text
// form "<prefix>.<id>.<secret>" with a hex id and a 32-byte base64url secret,
// and the salted hash that is all a store keeps of a secret.

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm::coordinator {

// `n` bytes from the system's CSPRNG. INTERNAL if it fails.
absl::StatusOr<std::string> RandomBytes(size_t n);

// Hex SHA-256 of the salt's bytes (`salt_hex` decoded) followed by the secret's text.
std::string HashTokenSecret(absl::string_view salt_hex, absl::string_view secret);

// Whether HashTokenSecret(salt_hex, secret) is `hash_hex`, compared in
// constant time so that the answer's timing tells nothing about the hash.
bool TokenSecretMatches(absl::string_view salt_hex, absl::string_view hash_hex,
                        absl::string_view secret);

// A fresh token's parts: `id` (id_bytes random bytes, lowercase hex),
// `secret` (32 random bytes, base64url), a random salt (hex) and the hash.
struct TokenParts {
  std::string id;
  std::string secret;
  std::string salt;
  std::string secret_hash;
};
absl::StatusOr<TokenParts> MakeTokenParts(size_t id_bytes);

struct SplitTokenText {
  std::string id;
  std::string secret;
};
// Splits "<prefix>.<id>.<secret>" whose id has id_bytes (as lowercase hex).
// INVALID_ARGUMENT "malformed <kind> (why); expected <prefix>.<id>.<secret>
// as printed by <made_by>", never quoting the secret.
absl::StatusOr<SplitTokenText> SplitToken(absl::string_view token, absl::string_view prefix,
                                          size_t id_bytes, absl::string_view kind,
                                          absl::string_view made_by);

// Whether `s` is 2 * id_bytes lowercase hex characters.
bool IsTokenId(absl::string_view s, size_t id_bytes);

}  // namespace musafarm::coordinator
