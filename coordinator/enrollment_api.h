#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "musafarm/v1/agent_service.pb.h"

namespace musafarm::coordinator {

// The enrolment calls, as the coordinator answers them: the seam between
// AgentServiceImpl (gRPC) and Enrollment. Called only on the core EventLoop;
// must not block for long (one SQLite statement or two, one signature).
class EnrollmentApi {
 public:
  virtual ~EnrollmentApi() = default;
  // `peer` is for the log.
  virtual absl::StatusOr<v1::EnrollResponse> Enroll(const v1::EnrollRequest& request,
                                                    const std::string& peer) = 0;
  // `peer_chain_pem`: the certificate the caller's TLS handshake presented,
  // leaf first (gRPC's x509_pem_cert, then x509_pem_cert_chain); empty: none.
  virtual absl::StatusOr<v1::RenewCertificateResponse> Renew(
      const std::string& peer_chain_pem, const v1::RenewCertificateRequest& request,
      const std::string& peer) = 0;
};

}  // namespace musafarm::coordinator
