#pragma once

// The farm's X.509 toolkit, over OpenSSL 3: the CA that `musafarm-coordinator
// ca init` makes, the keys and CSRs agents make at enrolment, the certificates
// the coordinator signs, and the checks it makes of a client certificate that
// a TLS handshake presented. No gRPC here: the transport hands PEM text in.
//
// Keys are ECDSA P-256 (small, fast to make and to verify; what every TLS
// stack accepts). Everything travels as PEM text. Every error is an
// absl::Status whose message says what is wrong in words an operator can act
// on; verification failures are UNAUTHENTICATED.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace musafarm::pki {

// A new ECDSA P-256 private key, PEM (PKCS#8, unencrypted: it is stored 0600).
absl::StatusOr<std::string> GeneratePrivateKey();

// A PKCS#10 request for `common_name`, signed with `key_pem`.
absl::StatusOr<std::string> MakeCsr(const std::string& key_pem, const std::string& common_name);

struct CsrInfo {
  std::string common_name;
};
// Parses a PEM CSR and checks its self-signature (the requester holds the key)
// and its key (EC P-256, or RSA of at least 2048 bits: what SignCsr signs).
// INVALID_ARGUMENT when it is not one, the signature does not verify, or the
// key is another kind.
absl::StatusOr<CsrInfo> ParseCsr(const std::string& csr_pem);

struct Ca {
  std::string cert_pem;
  std::string key_pem;
};

// A self-signed CA certificate (basicConstraints CA:TRUE, keyCertSign, cRLSign)
// with a new key, valid from `not_before` to `not_after`.
absl::StatusOr<Ca> MakeCa(const std::string& common_name, absl::Time not_before,
                          absl::Time not_after);

struct IssueOptions {
  std::string common_name;                // the subject CN; for agents, the agent's name
  std::vector<std::string> dns_names;     // subjectAltName DNS entries
  std::vector<std::string> ip_addresses;  // subjectAltName IP entries ("127.0.0.1", "::1")
  bool server = false;                    // extendedKeyUsage serverAuth
  bool client = false;                    // extendedKeyUsage clientAuth
  absl::Time not_before;
  absl::Time not_after;
};

// Signs the public key in `csr_pem` (after ParseCsr's checks) as `options`
// say, with `ca`. The subject is options.common_name, not the CSR's: the
// caller decides the name. A fresh random 128-bit serial. Returns the PEM
// certificate.
absl::StatusOr<std::string> SignCsr(const Ca& ca, const std::string& csr_pem,
                                    const IssueOptions& options);

struct CertInfo {
  std::string common_name;         // subject CN
  std::string issuer_common_name;  // issuer CN
  std::string serial_hex;          // lowercase hex, no leading zeros
  std::string fingerprint;         // "sha256:" + lowercase hex of the DER certificate
  absl::Time not_before;
  absl::Time not_after;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
  bool is_ca = false;
};

// The first certificate in `cert_pem`. INVALID_ARGUMENT when there is none.
absl::StatusOr<CertInfo> ParseCertificate(const std::string& cert_pem);

// Whether `key_pem` is the private key of the first certificate in `cert_pem`.
absl::StatusOr<bool> KeyMatchesCertificate(const std::string& key_pem, const std::string& cert_pem);

// Checks a certificate a TLS peer presented as a client: `chain_pem` holds the
// leaf first, then any intermediates it sent; it must chain to a certificate in
// `trusted_pem` (one or more PEM CA certificates), be valid at `now`, and allow
// clientAuth when it has an extendedKeyUsage. Returns the leaf's CertInfo, or
// UNAUTHENTICATED with the reason in words: "certificate for 'a' expired at
// 2026-12-01T10:00:00Z", "certificate for 'a' is not signed by this farm's CA
// (issuer 'other-ca')", "certificate for 'a' is not valid before ...", ...
// A CA certificate as the leaf is refused ("... is a CA certificate, not a
// client's"), whatever its key usage allows. The TLS handshake itself proved
// that the peer holds the leaf's key.
//
// From gRPC's auth context pass x509_pem_cert + x509_pem_cert_chain, in that
// order: on the server side gRPC 1.51 (OpenSSL) gives the chain WITHOUT the
// leaf, so the chain alone names the CA (pki_test, PkiGrpcTest shows it).
absl::StatusOr<CertInfo> VerifyClientCertificate(const std::string& chain_pem,
                                                 const std::string& trusted_pem, absl::Time now);

// "sha256:" + lowercase hex of the SHA-256 of the certificate's
// SubjectPublicKeyInfo (DER): the pin an agent is given with a join token to
// trust the CA it first talks to (as kubeadm's --discovery-token-ca-cert-hash).
absl::StatusOr<std::string> PublicKeyPin(const std::string& cert_pem);

// Opens a TLS connection to `host_port` ("host:port", "[v6]:port"), offering
// ALPN "h2" as a gRPC client does, WITHOUT verifying the server, and returns
// the certificates it sent (leaf first) as PEM. For pinning only: the caller
// must check a pin before trusting anything in the result.
absl::StatusOr<std::vector<std::string>> FetchServerCertificates(const std::string& host_port,
                                                                 absl::Duration timeout);

}  // namespace musafarm::pki
