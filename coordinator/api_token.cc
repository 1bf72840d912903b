#include "coordinator/api_token.h"

#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "coordinator/token_secret.h"

namespace musafarm::coordinator {
namespace {

constexpr size_t kIdBytes = 8;  // 16 hex chars: finds a row, guessing it gains nothing
constexpr size_t kMaxUserName = 64;

}  // namespace

bool IsApiTokenId(absl::string_view token) { return IsTokenId(token, kIdBytes); }

absl::StatusOr<ParsedApiToken> ParseApiToken(absl::string_view token) {
  absl::StatusOr<SplitTokenText> split =
      SplitToken(token, kApiTokenPrefix, kIdBytes, "API token", "`musafarm token create`");
  if (!split.ok()) return split.status();
  return ParsedApiToken{std::move(split->id), std::move(split->secret)};
}

absl::Status ValidateUserName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("a user name must not be empty");
  if (name.size() > kMaxUserName) {
    return absl::InvalidArgumentError(absl::StrCat("user name is ", name.size(),
                                                   " characters; the limit is ", kMaxUserName));
  }
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '@' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "user name '", absl::CHexEscape(name), "': character ", i + 1,
          " is not allowed (use letters, digits and . _ @ -)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<NewApiToken> MakeApiToken(absl::string_view user, absl::string_view role,
                                         absl::Duration ttl, absl::string_view created_by,
                                         absl::Time now) {
  if (absl::Status s = ValidateUserName(user); !s.ok()) return s;
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("an API token needs a positive time to live");
  }
  absl::StatusOr<TokenParts> parts = MakeTokenParts(kIdBytes);
  if (!parts.ok()) return parts.status();
  NewApiToken out;
  out.row.id = parts->id;
  out.row.user = std::string(user);
  out.row.role = std::string(role);
  out.row.salt = parts->salt;
  out.row.secret_hash = parts->secret_hash;
  out.row.created_at = now;
  out.row.created_by = std::string(created_by);
  out.row.expire_time = ttl == absl::InfiniteDuration() ? absl::InfiniteFuture() : now + ttl;
  out.text = absl::StrCat(kApiTokenPrefix, ".", parts->id, ".", parts->secret);
  return out;
}

bool ApiTokenSecretMatches(const ApiToken& row, absl::string_view secret) {
  return TokenSecretMatches(row.salt, row.secret_hash, secret);
}

}  // namespace musafarm::coordinator
