#pragma once

// Where the key that seals job secrets at rest comes from (SecretCipher).

#include <string>

#include "absl/status/statusor.h"

namespace musafarm::coordinator {

inline constexpr char kSecretsKeyEnv[] = "MUSAFARM_SECRETS_KEY";
inline constexpr char kSecretsKeyFileName[] = "secrets.key";

struct SecretsKey {
  std::string key;     // SecretCipher::kKeySize raw bytes
  std::string source;  // for the log: the file, or the environment variable
  bool created = false;
};

// In order: `key_file` (--secrets-key-file) when set; else `env_value` (the
// MUSAFARM_SECRETS_KEY variable) when set; else <data_dir>/secrets.key,
// created with a new random key (mode 0600) when missing. Each holds the key
// as base64 of 32 bytes, surrounding white space ignored. An error names the
// source and what is wrong with it, never the key.
absl::StatusOr<SecretsKey> LoadSecretsKey(const std::string& key_file, const char* env_value,
                                          const std::string& data_dir);

}  // namespace musafarm::coordinator
