#include "content/digest.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace musafarm::content {

Hasher::Hasher() : ctx_(EVP_MD_CTX_new()) {
  // Only fails when out of memory, where the process cannot go on anyway.
  if (ctx_ == nullptr || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) std::abort();
}

void Hasher::Update(absl::string_view bytes) {
  if (!bytes.empty()) EVP_DigestUpdate(ctx_.get(), bytes.data(), bytes.size());
}

std::string Hasher::FinishHex() {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx_.get(), md, &n);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(md), n));
}

v1::Digest DigestOf(absl::string_view bytes) {
  Hasher h;
  h.Update(bytes);
  v1::Digest d;
  d.set_sha256(h.FinishHex());
  d.set_size_bytes(static_cast<int64_t>(bytes.size()));
  return d;
}

absl::StatusOr<v1::Digest> DigestOfFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int e = errno;
    const std::string why = absl::StrCat(path, ": ", std::strerror(e));
    return e == ENOENT ? absl::NotFoundError(why) : absl::InternalError(why);
  }
  Hasher h;
  std::string buf(1 << 20, '\0');
  int64_t size = 0;
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return absl::InternalError(absl::StrCat(path, ": ", std::strerror(e)));
    }
    if (n == 0) break;
    h.Update(absl::string_view(buf.data(), static_cast<size_t>(n)));
    size += n;
  }
  ::close(fd);
  v1::Digest d;
  d.set_sha256(h.FinishHex());
  d.set_size_bytes(size);
  return d;
}

absl::Status CheckDigest(const v1::Digest& d, absl::string_view what) {
  const std::string& h = d.sha256();
  bool hex = h.size() == 64;
  for (char c : h) hex = hex && (absl::ascii_isdigit(c) || (c >= 'a' && c <= 'f'));
  if (!hex) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": sha256 must be 64 lowercase hex digits, not '",
                     h.substr(0, 80), h.size() > 80 ? "..." : "", "'"));
  }
  if (d.size_bytes() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": size_bytes ", d.size_bytes(), " is negative"));
  }
  return absl::OkStatus();
}

std::string ShortDigest(const v1::Digest& d) {
  if (d.sha256().empty()) return "<none>";
  return absl::StrCat("sha256:", d.sha256().substr(0, 12), "/", d.size_bytes());
}

}  // namespace musafarm::content
