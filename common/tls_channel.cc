#include "common/tls_channel.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/security/credentials.h"

namespace musafarm {

absl::StatusOr<std::string> ReadPemFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const int e = errno;
    if (e == ENOENT) return absl::NotFoundError(path);
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": ", std::strerror(e)));
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  std::string pem = ss.str();
  // gRPC takes any bytes and fails the handshake later with a vague error;
  // a file that is plainly not PEM is caught here, naming the file.
  if (!absl::StrContains(pem, "-----BEGIN ")) {
    return absl::InvalidArgumentError(absl::StrCat(path, " holds no PEM data"));
  }
  return pem;
}

std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(
    const std::optional<ChannelTls>& tls) {
  if (!tls.has_value()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls->ca_pem;
  options.pem_cert_chain = tls->cert_pem;
  options.pem_private_key = tls->key_pem;
  return grpc::SslCredentials(options);
}

}  // namespace musafarm
