#pragma once

// Agent enrolment, certificate renewal and revocation (issue 10, point 2;
// docs/security.md): the coordinator's certificate authority for agents.
//
//   join token + CSR --Enroll--> certificate for the requested name (the token
//   loses one use; the name must be valid and not revoked)
//   current certificate + CSR --Renew--> certificate for the same name
//   Revoke(name) --> every certificate of the name refused from now on (the
//   core's Register check asks IsRevoked; the core also ends the live stream)
//
// No gRPC here: the transport hands in the requests and the peer's PEM chain.

#include <map>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/pki.h"
#include "coordinator/enrollment_api.h"
#include "coordinator/store.h"
#include "musafarm/v1/agent_service.pb.h"

namespace musafarm::coordinator {

// Agent names: 1 to 63 of [A-Za-z0-9._-], starting with a letter or digit, so
// that a name is a safe certificate CN, file name and label value.
// INVALID_ARGUMENT saying which rule it breaks.
absl::Status ValidateAgentName(absl::string_view name);

struct EnrollmentOptions {
  // How long the certificates it signs are valid (`--cert-days`, or
  // `--cert-lifetime` seconds for tests).
  absl::Duration cert_lifetime = absl::Hours(24 * 30);
  // The CA that signs agent certificates (ca.crt + ca.key). None when the
  // operator's own CA issues them: Enroll and Renew then answer
  // FAILED_PRECONDITION, and revocation still works (it is by name).
  std::optional<pki::Ca> ca;
  // The CA bundle agents' certificates must chain to (Renew verifies the
  // caller's certificate against it).
  std::string trusted_pem;
};

// Not thread-safe: runs on the core loop, which owns the Store.
class Enrollment final : public EnrollmentApi {
 public:
  // None owned; both outlive this.
  Enrollment(Store* store, const Clock* clock, EnrollmentOptions options);

  // Reads the revocations from the store.
  absl::Status Load();

  // Checks the join token (exists, right secret, not expired, uses left: one
  // use taken atomically in the store), the name (valid, not revoked) and the
  // CSR, then signs and records a certificate for `request.name()`.
  // UNAUTHENTICATED for a token problem, INVALID_ARGUMENT for a bad name or
  // CSR, PERMISSION_DENIED for a revoked name, FAILED_PRECONDITION without a
  // CA key. `peer` is for the log, which never holds the token's secret.
  absl::StatusOr<v1::EnrollResponse> Enroll(const v1::EnrollRequest& request,
                                            const std::string& peer) override;

  // A new certificate, for the CSR's key, for the name in `peer_chain_pem`:
  // the certificate the caller's TLS handshake presented (leaf first), which
  // must verify against the trusted bundle now and not be revoked
  // (UNAUTHENTICATED otherwise).
  absl::StatusOr<v1::RenewCertificateResponse> Renew(const std::string& peer_chain_pem,
                                                     const v1::RenewCertificateRequest& request,
                                                     const std::string& peer) override;

  // Records that `name` is revoked, with the serials issued to it so far.
  // NOT_FOUND when no certificate was issued to it and `known_agent` is false
  // (a typo, most likely). Revoking a revoked name again keeps the first time.
  absl::StatusOr<Revocation> Revoke(const std::string& name, bool known_agent);

  bool IsRevoked(const std::string& name) const { return revoked_.count(name) > 0; }
  // The refusal a revoked agent gets: UNAUTHENTICATED "agent 'a' was revoked at T; ...".
  absl::Status RevokedError(const std::string& name) const;

 private:
  absl::Status RequireCa(absl::string_view what) const;
  // Signs `csr_pem` for `name`, records the certificate and fills `out`.
  template <typename Response>
  absl::Status Issue(const std::string& csr_pem, const std::string& name, Response* out);

  Store* const store_;
  const Clock* const clock_;
  const EnrollmentOptions options_;
  std::map<std::string, Revocation> revoked_;  // by name
};

}  // namespace musafarm::coordinator
