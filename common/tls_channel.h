#pragma once

// Client-side TLS for the coordinator's port, shared by the agent and the CLI:
// the PEM files a client reads and the gRPC channel credentials made of them.
// This header names no gRPC type beyond a forward declaration, so the agent's
// main and the CLI's flag handling need not include gRPC.

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace grpc {
class ChannelCredentials;
}  // namespace grpc

namespace musafarm {

// What a client trusts and, for an agent, what it presents.
struct ChannelTls {
  std::string ca_pem;    // roots the coordinator's certificate must chain to
  std::string cert_pem;  // the client's certificate chain; empty: none (the CLI)
  std::string key_pem;   // its private key; empty with cert_pem
};

// A PEM file's contents. NotFound (message: the path) when it does not exist;
// InvalidArgument "cannot read PATH: why" when it cannot be read, and
// "PATH holds no PEM data" when it is not PEM.
absl::StatusOr<std::string> ReadPemFile(const std::string& path);

// TLS credentials that verify the coordinator's certificate and host name
// against tls->ca_pem; plaintext when `tls` is empty (--insecure).
std::shared_ptr<grpc::ChannelCredentials> MakeChannelCredentials(
    const std::optional<ChannelTls>& tls);

}  // namespace musafarm
