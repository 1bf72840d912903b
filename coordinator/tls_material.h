#pragma once

// The coordinator's TLS material: where it lives, loading it, and the gRPC
// server credentials made from it. Agents present client certificates, which
// the transport checks itself (agent_service.cc) against the agent CA bundle
// loaded here, so that a refusal carries a status that says why.

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/agent_event_sink.h"

namespace grpc {
class AuthContext;
class ServerCredentials;
}  // namespace grpc

namespace musafarm::coordinator {

// Where the files are. Empty fields take their place in `dir`:
// <dir>/server.crt, <dir>/server.key, <dir>/ca.crt and (optional) <dir>/ca.key.
struct TlsPaths {
  std::string dir;       // --tls-dir; the caller defaults it to <data-dir>/pki
  std::string cert;      // --tls-cert: the coordinator's certificate (chain), PEM
  std::string key;       // --tls-key: its private key, PEM
  std::string agent_ca;  // --agent-ca: the CA bundle agents' certificates must chain to
  std::string ca_key;    // --ca-key: the farm CA's key (enrolment); absent with an operator's CA
};

struct TlsMaterial {
  std::string cert_pem;
  std::string key_pem;
  std::string agent_ca_pem;
  std::string ca_key_pem;  // empty: this coordinator cannot sign certificates
  TlsPaths paths;          // the files they came from, every field filled
};

// Reads the files `paths` names. A missing certificate, key or CA bundle is
// InvalidArgument saying which file and how to make it ("no TLS certificate in
// D: run `musafarm-coordinator ca init --data-dir X`, or pass --insecure ...");
// `data_dir` is the X of that hint. A missing ca.key is no error (an
// operator's own CA), unless --ca-key named it.
absl::StatusOr<TlsMaterial> LoadTlsMaterial(TlsPaths paths, const std::string& data_dir);

// Server credentials for `tls`: the coordinator's certificate, and a client
// certificate requested but not verified by the handshake (the CLI has none;
// agents' are verified by the transport against tls.agent_ca_pem).
std::shared_ptr<grpc::ServerCredentials> MakeServerCredentials(const TlsMaterial& tls);

// The identity of a TLS peer from the certificate chain its handshake
// presented ("x509_pem_cert_chain", else "x509_pem_cert" in `auth`), verified
// against `agent_ca_pem` at `now` (pki::VerifyClientCertificate).
// UNAUTHENTICATED with the reason when there is no certificate or it does not
// verify: "no client certificate: ...", "certificate for 'a' expired at ...".
absl::StatusOr<AgentIdentity> VerifyAgentPeer(const grpc::AuthContext& auth,
                                              const std::string& agent_ca_pem, absl::Time now);

}  // namespace musafarm::coordinator
