#include "coordinator/token_secret.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace musafarm::coordinator {
namespace {

constexpr size_t kSecretBytes = 32;  // 256 bits: no guessing within a token's life
constexpr size_t kSaltBytes = 16;

}  // namespace

absl::StatusOr<std::string> RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return absl::InternalError("the system random number generator failed");
  }
  return out;
}

std::string HashTokenSecret(absl::string_view salt_hex, absl::string_view secret) {
  std::string input = absl::HexStringToBytes(salt_hex);
  input.append(secret.data(), secret.size());
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(input.data()), input.size(), digest);
  OPENSSL_cleanse(input.data(), input.size());
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest), sizeof(digest)));
}

bool TokenSecretMatches(absl::string_view salt_hex, absl::string_view hash_hex,
                        absl::string_view secret) {
  const std::string hash = HashTokenSecret(salt_hex, secret);
  return hash.size() == hash_hex.size() &&
         CRYPTO_memcmp(hash.data(), hash_hex.data(), hash.size()) == 0;
}

absl::StatusOr<TokenParts> MakeTokenParts(size_t id_bytes) {
  absl::StatusOr<std::string> id = RandomBytes(id_bytes);
  if (!id.ok()) return id.status();
  absl::StatusOr<std::string> secret = RandomBytes(kSecretBytes);
  if (!secret.ok()) return secret.status();
  absl::StatusOr<std::string> salt = RandomBytes(kSaltBytes);
  if (!salt.ok()) return salt.status();
  TokenParts out;
  out.id = absl::BytesToHexString(*id);
  out.secret = absl::WebSafeBase64Escape(*secret);
  out.salt = absl::BytesToHexString(*salt);
  out.secret_hash = HashTokenSecret(out.salt, out.secret);
  OPENSSL_cleanse(secret->data(), secret->size());
  return out;
}

bool IsTokenId(absl::string_view s, size_t id_bytes) {
  if (s.size() != 2 * id_bytes) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

absl::StatusOr<SplitTokenText> SplitToken(absl::string_view token, absl::string_view prefix,
                                          size_t id_bytes, absl::string_view kind,
                                          absl::string_view made_by) {
  const std::vector<absl::string_view> parts = absl::StrSplit(token, '.');
  const auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("malformed ", kind, " (", why, "); expected ",
                                                   prefix, ".<id>.<secret> as printed by ",
                                                   made_by));
  };
  if (parts.size() != 3 || parts[0] != prefix) return bad("wrong shape");
  if (!IsTokenId(parts[1], id_bytes)) return bad("bad id");
  std::string raw;
  if (parts[2].empty() || !absl::WebSafeBase64Unescape(parts[2], &raw) ||
      raw.size() != kSecretBytes) {
    return bad(absl::StrCat("bad secret for id ", parts[1]));
  }
  OPENSSL_cleanse(raw.data(), raw.size());
  return SplitTokenText{std::string(parts[1]), std::string(parts[2])};
}

}  // namespace musafarm::coordinator
