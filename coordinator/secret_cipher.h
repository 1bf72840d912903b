#pragma once

// Job secrets at rest: each value sealed with AES-256-GCM before it is written
// to the database (docs/security.md, "Secrets").

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm::coordinator {

// Seals and opens values with one 256-bit key. A sealed value is
//   kSealedMagic | 12-byte random nonce | ciphertext | 16-byte GCM tag
// and `context` (the row's job id and name) is authenticated with it, so a
// sealed value copied into another row does not open. Thread-compatible.
class SecretCipher {
 public:
  static constexpr size_t kKeySize = 32;
  static constexpr size_t kNonceSize = 12;
  static constexpr size_t kTagSize = 16;
  // Starts every sealed value. It begins with a NUL byte, which no value
  // passed through an environment variable (how the CLI takes secrets) has,
  // so a row written in clear by an older coordinator is told apart.
  static constexpr absl::string_view kSealedMagic{"\0mfsec1", 7};

  // `key`: exactly kKeySize bytes.
  static absl::StatusOr<SecretCipher> Create(absl::string_view key);

  absl::StatusOr<std::string> Seal(absl::string_view plaintext, absl::string_view context) const;
  // DataLoss when `sealed` is not one of ours or does not authenticate (a
  // different key, a damaged or moved row).
  absl::StatusOr<std::string> Open(absl::string_view sealed, absl::string_view context) const;
  static bool IsSealed(absl::string_view value);

 private:
  explicit SecretCipher(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

// The context a job secret's row is sealed with.
std::string SecretContext(absl::string_view job_id, absl::string_view name);

}  // namespace musafarm::coordinator
