#include "coordinator/secret_cipher.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace musafarm::coordinator {
namespace {

struct CtxFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};
using CtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CtxFree>;

const unsigned char* Bytes(absl::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}
unsigned char* Bytes(std::string& s) { return reinterpret_cast<unsigned char*>(s.data()); }

}  // namespace

absl::StatusOr<SecretCipher> SecretCipher::Create(absl::string_view key) {
  if (key.size() != kKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("secrets key must be ", kKeySize, " bytes, got ", key.size()));
  }
  return SecretCipher(std::string(key));
}

bool SecretCipher::IsSealed(absl::string_view value) {
  return absl::StartsWith(value, kSealedMagic) &&
         value.size() >= kSealedMagic.size() + kNonceSize + kTagSize;
}

std::string SecretContext(absl::string_view job_id, absl::string_view name) {
  return absl::StrCat("job_secrets:", job_id.size(), ":", job_id, ":", name);
}

absl::StatusOr<std::string> SecretCipher::Seal(absl::string_view plaintext,
                                               absl::string_view context) const {
  std::string out(kSealedMagic);
  std::string nonce(kNonceSize, '\0');
  if (RAND_bytes(Bytes(nonce), static_cast<int>(nonce.size())) != 1) {
    return absl::InternalError("no random bytes for a nonce (RAND_bytes failed)");
  }
  out += nonce;
  CtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  std::string ct(plaintext.size(), '\0');
  std::string tag(kTagSize, '\0');
  if (ctx == nullptr ||
      EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceSize, nullptr) != 1 ||
      EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, Bytes(key_), Bytes(nonce)) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, Bytes(context), static_cast<int>(context.size())) !=
          1 ||
      EVP_EncryptUpdate(ctx.get(), Bytes(ct), &len, Bytes(plaintext),
                        static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), Bytes(ct) + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, Bytes(tag)) != 1) {
    return absl::InternalError("AES-256-GCM encryption failed");
  }
  out += ct;
  out += tag;
  return out;
}

absl::StatusOr<std::string> SecretCipher::Open(absl::string_view sealed,
                                               absl::string_view context) const {
  if (!IsSealed(sealed)) return absl::DataLossError("not a sealed secret");
  sealed.remove_prefix(kSealedMagic.size());
  const absl::string_view nonce = sealed.substr(0, kNonceSize);
  const absl::string_view ct = sealed.substr(kNonceSize, sealed.size() - kNonceSize - kTagSize);
  std::string tag(sealed.substr(sealed.size() - kTagSize));
  std::string pt(ct.size(), '\0');
  CtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  if (ctx == nullptr ||
      EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, kNonceSize, nullptr) != 1 ||
      EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, Bytes(key_), Bytes(nonce)) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, Bytes(context), static_cast<int>(context.size())) !=
          1 ||
      EVP_DecryptUpdate(ctx.get(), Bytes(pt), &len, Bytes(ct), static_cast<int>(ct.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, Bytes(tag)) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), Bytes(pt) + len, &len) != 1) {
    return absl::DataLossError(
        "a stored secret does not decrypt with this key (another --secrets-key-file, or a damaged "
        "row)");
  }
  return pt;
}

}  // namespace musafarm::coordinator
