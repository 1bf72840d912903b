#include "coordinator/tls_material.h"

#include "absl/strings/str_cat.h"
#include "common/pki.h"
#include "common/status_macros.h"
#include "common/tls_channel.h"
#include "grpcpp/security/auth_context.h"
#include "grpcpp/security/server_credentials.h"

namespace musafarm::coordinator {

absl::StatusOr<TlsMaterial> LoadTlsMaterial(TlsPaths paths, const std::string& data_dir) {
  const bool ca_key_named = !paths.ca_key.empty();
  if (paths.cert.empty()) paths.cert = absl::StrCat(paths.dir, "/server.crt");
  if (paths.key.empty()) paths.key = absl::StrCat(paths.dir, "/server.key");
  if (paths.agent_ca.empty()) paths.agent_ca = absl::StrCat(paths.dir, "/ca.crt");
  if (paths.ca_key.empty()) paths.ca_key = absl::StrCat(paths.dir, "/ca.key");
  const std::string how = absl::StrCat("run `musafarm-coordinator ca init --data-dir ", data_dir,
                                       "`, or pass --insecure for plaintext on a trusted network");
  TlsMaterial tls;
  struct File {
    const std::string& path;
    std::string* pem;
    const char* what;
  };
  for (const File& f : {File{paths.cert, &tls.cert_pem, "TLS certificate"},
                        File{paths.key, &tls.key_pem, "TLS private key"},
                        File{paths.agent_ca, &tls.agent_ca_pem, "agent CA certificate"}}) {
    absl::StatusOr<std::string> pem = ReadPemFile(f.path);
    if (absl::IsNotFound(pem.status())) {
      return absl::InvalidArgumentError(absl::StrCat("no ", f.what, " at ", f.path, ": ", how));
    }
    if (!pem.ok()) return pem.status();
    *f.pem = *std::move(pem);
  }
  absl::StatusOr<std::string> ca_key = ReadPemFile(paths.ca_key);
  if (ca_key.ok()) {
    tls.ca_key_pem = *std::move(ca_key);
  } else if (ca_key_named || !absl::IsNotFound(ca_key.status())) {
    return absl::InvalidArgumentError(
        absl::StrCat("no CA key at ", paths.ca_key, " (--ca-key): ", ca_key.status().message()));
  }
  tls.paths = std::move(paths);
  return tls;
}

std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsMaterial& tls) {
  grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
  options.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
  // Sent to clients as the acceptable issuers; not used to verify (the
  // transport does, so that a refusal can say why).
  options.pem_root_certs = tls.agent_ca_pem;
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<AgentIdentity> VerifyAgentPeer(const grpc::AuthContext& auth,
                                              const std::string& agent_ca_pem, absl::Time now) {
  // gRPC 1.51 (OpenSSL) puts the leaf in x509_pem_cert and, on the server
  // side, the rest of the chain WITHOUT the leaf in x509_pem_cert_chain: the
  // leaf goes first, or the chain alone would name the CA (pki.h).
  auto property = [&auth](const char* name) {
    std::string value;
    for (const grpc::string_ref& v : auth.FindPropertyValues(name)) value.assign(v.data(), v.size());
    return value;
  };
  const std::string leaf = property("x509_pem_cert");
  if (leaf.empty()) {
    return absl::UnauthenticatedError(
        "no client certificate: an agent must present a certificate signed by the farm's CA "
        "(<work-dir>/pki/agent.crt), or the coordinator must run with --insecure");
  }
  MF_ASSIGN_OR_RETURN(const pki::CertInfo info,
                      pki::VerifyClientCertificate(leaf + property("x509_pem_cert_chain"),
                                                   agent_ca_pem, now));
  return AgentIdentity{info.common_name, info.serial_hex, info.fingerprint, info.not_after};
}

}  // namespace musafarm::coordinator
