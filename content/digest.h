#pragma once

// SHA-256 content digests (issue 17): the name of every blob in the content
// store, and of every directory of a tree.

#include <openssl/evp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::content {

// The digest of `bytes`.
v1::Digest DigestOf(absl::string_view bytes);

// The digest of the file at `path`, read in 1 MiB pieces. NOT_FOUND /
// INTERNAL naming the path when it cannot be read.
absl::StatusOr<v1::Digest> DigestOfFile(const std::string& path);

// OK for 64 lowercase hex digits and a size >= 0; INVALID_ARGUMENT naming
// `what` (e.g. "digest 3 of the request") otherwise.
absl::Status CheckDigest(const v1::Digest& d, absl::string_view what);

// "sha256:<first 12 hex>/<size>" for messages; "<none>" for an empty digest.
std::string ShortDigest(const v1::Digest& d);


// An incremental SHA-256, for bytes that arrive in pieces (uploads, reads).
class Hasher {
 public:
  Hasher();
  void Update(absl::string_view bytes);
  // Lowercase hex of everything updated so far. The hasher is spent after it.
  std::string FinishHex();

 private:
  struct Free {
    void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
  };
  std::unique_ptr<EVP_MD_CTX, Free> ctx_;
};

}  // namespace musafarm::content
