#include "coordinator/join_token.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "coordinator/token_secret.h"

namespace musafarm::coordinator {
namespace {

constexpr size_t kIdBytes = 4;  // 8 hex chars: enough to find a row, not a secret

}  // namespace

absl::StatusOr<ParsedJoinToken> ParseJoinToken(absl::string_view token) {
  absl::StatusOr<SplitTokenText> split =
      SplitToken(token, kJoinTokenPrefix, kIdBytes, "join token",
                 "`musafarm-coordinator join-token create`");
  if (!split.ok()) return split.status();
  return ParsedJoinToken{std::move(split->id), std::move(split->secret)};
}

absl::StatusOr<NewJoinToken> MakeJoinToken(int64_t uses, absl::Duration ttl,
                                           std::string description, absl::Time now) {
  if (uses < 1) return absl::InvalidArgumentError("a join token needs at least 1 use");
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("a join token needs a positive time to live");
  }
  absl::StatusOr<TokenParts> parts = MakeTokenParts(kIdBytes);
  if (!parts.ok()) return parts.status();
  NewJoinToken out;
  out.row.id = parts->id;
  out.row.salt = parts->salt;
  out.row.secret_hash = parts->secret_hash;
  out.row.uses_left = uses;
  out.row.created_at = now;
  out.row.expire_time = now + ttl;
  out.row.description = std::move(description);
  out.text = absl::StrCat(kJoinTokenPrefix, ".", parts->id, ".", parts->secret);
  return out;
}

bool JoinTokenSecretMatches(const JoinToken& row, absl::string_view secret) {
  return TokenSecretMatches(row.salt, row.secret_hash, secret);
}

}  // namespace musafarm::coordinator
