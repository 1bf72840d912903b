#include "coordinator/secrets_key.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "coordinator/secret_cipher.h"

namespace musafarm::coordinator {
namespace {

absl::StatusOr<std::string> DecodeKey(absl::string_view text, absl::string_view source) {
  std::string key;
  if (!absl::Base64Unescape(absl::StripAsciiWhitespace(text), &key) ||
      key.size() != SecretCipher::kKeySize) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": not a secrets key (want base64 of ", SecretCipher::kKeySize,
        " bytes, e.g. from `head -c32 /dev/urandom | base64`)"));
  }
  return key;
}

absl::StatusOr<std::string> ReadKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot read secrets key file ", path, ": ", std::strerror(errno)));
  }
  std::ostringstream s;
  s << in.rdbuf();
  return DecodeKey(s.str(), path);
}

// A new random key in `path`, readable by its owner only. O_EXCL: two
// coordinators cannot both create one (the data dir lock prevents that too).
absl::Status CreateKeyFile(const std::string& path, const std::string& key) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create secrets key file ", path, ": ", std::strerror(errno)));
  }
  const std::string text = absl::StrCat(absl::Base64Escape(key), "\n");
  const bool ok = ::fchmod(fd, 0600) == 0 &&
                  ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) &&
                  ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return absl::InternalError(
        absl::StrCat("cannot write secrets key file ", path, ": ", std::strerror(err)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<SecretsKey> LoadSecretsKey(const std::string& key_file, const char* env_value,
                                          const std::string& data_dir) {
  SecretsKey out;
  if (!key_file.empty()) {
    out.source = key_file;
    absl::StatusOr<std::string> key = ReadKeyFile(key_file);
    if (!key.ok()) return key.status();
    out.key = *std::move(key);
    return out;
  }
  if (env_value != nullptr) {
    out.source = kSecretsKeyEnv;
    absl::StatusOr<std::string> key = DecodeKey(env_value, kSecretsKeyEnv);
    if (!key.ok()) return key.status();
    out.key = *std::move(key);
    return out;
  }
  out.source = absl::StrCat(data_dir, "/", kSecretsKeyFileName);
  struct stat st;
  if (::stat(out.source.c_str(), &st) == 0) {
    // Written 0600 by us; an operator's copy may be looser.
    if ((st.st_mode & 077) != 0) ::chmod(out.source.c_str(), 0600);
    absl::StatusOr<std::string> key = ReadKeyFile(out.source);
    if (!key.ok()) return key.status();
    out.key = *std::move(key);
    return out;
  }
  out.key.assign(SecretCipher::kKeySize, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.key.data()),
                 static_cast<int>(out.key.size())) != 1) {
    return absl::InternalError("no random bytes for a secrets key (RAND_bytes failed)");
  }
  if (absl::Status s = CreateKeyFile(out.source, out.key); !s.ok()) return s;
  out.created = true;
  return out;
}

}  // namespace musafarm::coordinator
