#include "coordinator/join_token.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace musafarm::coordinator {
namespace {

constexpr size_t kIdBytes = 4;       // 8 hex chars: enough to find a row, not a secret
constexpr size_t kSecretBytes = 32;  // 256 bits: no guessing within a token's life
constexpr size_t kSaltBytes = 16;

absl::StatusOr<std::string> RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return absl::InternalError("the system random number generator failed");
  }
  return out;
}

// Hex SHA-256 of the salt's bytes followed by the secret's text.
std::string HashSecret(absl::string_view salt_hex, absl::string_view secret) {
  std::string input = absl::HexStringToBytes(salt_hex);
  input.append(secret.data(), secret.size());
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  OPENSSL_cleanse(input.data(), input.size());
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<ParsedJoinToken> ParseJoinToken(absl::string_view token) {
  const std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  const auto bad = [](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "malformed join token (", why,
        "); expected mfj1.<id>.<secret> as printed by `musafarm-coordinator join-token create`"));
  };
  if (parts.size() != 3 || parts[0] != kJoinTokenPrefix) return bad("wrong shape");
  if (parts[1].size() != 2 * kIdBytes || !IsLowerHex(parts[1])) return bad("bad id");
  std::string raw;
  if (parts[2].empty() || !absl::WebSafeBase64Unescape(parts[2], &raw) ||
      raw.size() != kSecretBytes) {
    return bad(absl::StrCat("bad secret for id ", parts[1]));
  }
  return ParsedJoinToken{std::string(parts[1]), std::string(parts[2])};
}

absl::StatusOr<NewJoinToken> MakeJoinToken(int64_t uses, absl::Duration ttl,
                                           std::string description, absl::Time now) {
  if (uses < 1) return absl::InvalidArgumentError("a join token needs at least 1 use");
  if (ttl <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("a join token needs a positive time to live");
  }
  absl::StatusOr<std::string> id = RandomBytes(kIdBytes);
  if (!id.ok()) return id.status();
  absl::StatusOr<std::string> secret = RandomBytes(kSecretBytes);
  if (!secret.ok()) return secret.status();
  absl::StatusOr<std::string> salt = RandomBytes(kSaltBytes);
  if (!salt.ok()) return salt.status();

  NewJoinToken out;
  const std::string secret_text = absl::WebSafeBase64Escape(*secret);
  out.row.id = absl::BytesToHexString(*id);
  out.row.salt = absl::BytesToHexString(*salt);
  out.row.secret_hash = HashSecret(out.row.salt, secret_text);
  out.row.uses_left = uses;
  out.row.created_at = now;
  out.row.expire_time = now + ttl;
  out.row.description = std::move(description);
  out.text = absl::StrCat(kJoinTokenPrefix, ".", out.row.id, ".", secret_text);
  return out;
}

bool JoinTokenSecretMatches(const JoinToken& row, absl::string_view secret) {
  const std::string hash = HashSecret(row.salt, secret);
  return hash.size() == row.secret_hash.size() &&
         CRYPTO_memcmp(hash.data(), row.secret_hash.data(), hash.size()) == 0;
}

}  // namespace musafarm::coordinator
