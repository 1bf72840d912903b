#pragma once

// The agent's side of enrolment and renewal (issue 10, point 2): the files it
// keeps in <work-dir>/pki, how it first learns to trust the farm's CA (a file
// or a pin), and the two unary calls. `musafarm-agent enroll` and the running
// agent's CertRenewer use it.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/pki.h"
#include "common/tls_channel.h"

namespace musafarm::agent {

// <work-dir>/pki/{agent.key, agent.crt, ca.crt}.
struct AgentPkiPaths {
  std::string key;
  std::string cert;
  std::string ca;
};
AgentPkiPaths DefaultPkiPaths(const std::string& work_dir);

// Writes a key/certificate pair (and the CA) so that a crash at any point
// leaves a matching pair to load: the new key goes to `<key>.next` (0600),
// then the certificate replaces the old one, then `<key>.next` is renamed
// over the key; RecoverAgentPki finishes or drops a pair cut short. Each file
// is written atomically (common/atomic_file.h); the key's directory is made
// 0700 if needed. Empty `ca_pem`: ca.crt is left as it is.
absl::Status WriteAgentPki(const AgentPkiPaths& paths, const std::string& key_pem,
                           const std::string& cert_pem, const std::string& ca_pem);

// Finishes what a WriteAgentPki cut short, before the pair is loaded: a
// `<key>.next` that matches the certificate becomes the key (the crash came
// after the certificate was written); one that does not is removed (it came
// before, and the old pair stands). No `<key>.next`: nothing to do.
absl::Status RecoverAgentPki(const AgentPkiPaths& paths);

// Fetches the certificates a coordinator presents and returns the one whose
// public key has `pin` ("sha256:HEX", as `join-token create` prints): the CA
// to trust from now on. The coordinators of `host_ports` are asked in turn
// until one answers (every coordinator of a farm presents the farm's CA).
// FAILED_PRECONDITION naming what was offered when none matches.
absl::StatusOr<std::string> TrustCaByPin(const std::vector<std::string>& host_ports,
                                         const std::string& pin, absl::Duration timeout);

struct EnrollRequestOptions {
  // HOST:PORT each (issue 20): Enroll goes to the active one, found as the
  // agent and the CLI find it (common/coordinator_targets.h).
  std::vector<std::string> coordinators;
  std::string token;        // mfj1.<id>.<secret>
  std::string name;
  std::string ca_pem;       // verifies the coordinator's certificate
  AgentPkiPaths paths;
  absl::Duration timeout = absl::Seconds(30);
};

// Makes a key and a CSR for `name`, calls Enroll over TLS verified against
// `ca_pem` (no client certificate), checks what came back, and writes the
// key, the certificate and `ca_pem` to `paths`. The coordinator's refusal
// comes back with its code and message (UNAUTHENTICATED "join token ... is
// used up; ask the operator for a new one").
absl::StatusOr<pki::CertInfo> EnrollAgent(const EnrollRequestOptions& options);

// A new key and certificate for the agent whose current material is `tls`:
// calls RenewCertificate presenting it, then writes the new key and
// certificate to `paths`. Returns the new certificate's info and fills
// `renewed` with the new material.
absl::StatusOr<pki::CertInfo> RenewAgentCertificate(const std::string& coordinator,
                                                    const ChannelTls& tls,
                                                    const AgentPkiPaths& paths,
                                                    absl::Duration timeout, ChannelTls* renewed);

}  // namespace musafarm::agent
