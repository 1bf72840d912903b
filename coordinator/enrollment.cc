#include "coordinator/enrollment.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "coordinator/join_token.h"

namespace musafarm::coordinator {
namespace {

std::shared_ptr<spdlog::logger> Log() {
  static auto log = GetLogger("enrollment");
  return log;
}

void SetTimestamp(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t us = absl::ToUnixMicros(t);
  ts->set_seconds(us / 1'000'000);
  ts->set_nanos(static_cast<int32_t>(us % 1'000'000) * 1000);
}

}  // namespace

absl::Status ValidateAgentName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("agent name is empty");
  if (name.size() > 63) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent name '", name.substr(0, 63), "...' is longer than 63 characters"));
  }
  if (!absl::ascii_isalnum(static_cast<unsigned char>(name[0]))) {
    return absl::InvalidArgumentError(
        absl::StrCat("agent name '", name, "' must start with a letter or digit"));
  }
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return absl::InvalidArgumentError(absl::StrCat(
          "agent name '", name, "' may hold only letters, digits, '.', '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

Enrollment::Enrollment(Store* store, const Clock* clock, EnrollmentOptions options)
    : store_(store), clock_(clock), options_(std::move(options)) {}

absl::Status Enrollment::Load() {
  MF_ASSIGN_OR_RETURN(std::vector<Revocation> all, store_->LoadRevocations());
  revoked_.clear();
  for (Revocation& r : all) {
    std::string name = r.name;
    revoked_.emplace(std::move(name), std::move(r));
  }
  return absl::OkStatus();
}

absl::Status Enrollment::RequireCa(absl::string_view what) const {
  if (options_.ca.has_value()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "this coordinator cannot ", what,
      ": it has no CA key (ca.key), so agent certificates come from the operator's own CA; "
      "issue one there, or run `musafarm-coordinator ca init` for a farm CA"));
}

absl::Status Enrollment::RevokedError(const std::string& name) const {
  auto it = revoked_.find(name);
  const std::string when = it == revoked_.end() ? "" : FormatUtc(it->second.revoked_at);
  return absl::UnauthenticatedError(
      absl::StrCat("agent '", name, "' was revoked", when.empty() ? "" : " at ", when,
                   "; its certificates are refused (enrol the host again under a new name)"));
}

template <typename Response>
absl::Status Enrollment::Issue(const std::string& csr_pem, const std::string& name,
                               Response* out) {
  const absl::Time now = clock_->Now();
  pki::IssueOptions issue;
  issue.common_name = name;
  issue.client = true;
  // A little back-dated, for hosts whose clocks run behind ours; at most a
  // tenth of the lifetime, so that short test lifetimes stay meaningful.
  issue.not_before = now - std::min(absl::Minutes(1), options_.cert_lifetime / 10);
  issue.not_after = now + options_.cert_lifetime;
  MF_ASSIGN_OR_RETURN(std::string cert_pem, pki::SignCsr(*options_.ca, csr_pem, issue));
  MF_ASSIGN_OR_RETURN(pki::CertInfo info, pki::ParseCertificate(cert_pem));
  IssuedCertificate record;
  record.serial_hex = info.serial_hex;
  record.name = name;
  record.fingerprint = info.fingerprint;
  record.not_after = info.not_after;
  record.issued_at = now;
  MF_RETURN_IF_ERROR(store_->RecordCertificate(record));
  out->set_certificate_pem(std::move(cert_pem));
  out->set_ca_pem(options_.ca->cert_pem);
  SetTimestamp(info.not_after, out->mutable_expire_time());
  Log()->info("issued certificate serial={} for agent '{}' valid until {}", info.serial_hex, name,
              FormatUtc(info.not_after));
  return absl::OkStatus();
}

absl::StatusOr<v1::EnrollResponse> Enrollment::Enroll(const v1::EnrollRequest& request,
                                                      const std::string& peer) {
  auto refuse = [&](absl::Status s) {
    Log()->warn("refusing enrolment of '{}' from {}: {}", request.name(), peer,
                std::string(s.message()));
    return s;
  };
  MF_RETURN_IF_ERROR(RequireCa("enrol agents"));
  absl::StatusOr<ParsedJoinToken> token = ParseJoinToken(request.token());
  if (!token.ok()) return refuse(absl::UnauthenticatedError(token.status().message()));
  absl::StatusOr<JoinToken> row = store_->LoadJoinToken(token->id);
  if (absl::IsNotFound(row.status())) {
    return refuse(absl::UnauthenticatedError(
        absl::StrCat("unknown join token ", token->id,
                     "; make one with `musafarm-coordinator join-token create`")));
  }
  if (!row.ok()) return refuse(row.status());
  if (!JoinTokenSecretMatches(*row, token->secret)) {
    return refuse(absl::UnauthenticatedError(
        absl::StrCat("join token ", token->id, " has the wrong secret")));
  }
  if (absl::Status s = ValidateAgentName(request.name()); !s.ok()) return refuse(s);
  if (IsRevoked(request.name())) {
    return refuse(absl::PermissionDeniedError(RevokedError(request.name()).message()));
  }
  if (absl::Status s = pki::ParseCsr(request.csr_pem()).status(); !s.ok()) {
    return refuse(absl::InvalidArgumentError(s.message()));
  }
  // Last of the checks, so that a typo in the name does not cost a use.
  absl::StatusOr<int64_t> left = store_->UseJoinToken(token->id, clock_->Now());
  if (!left.ok()) {
    if (absl::IsFailedPrecondition(left.status())) {  // used up or expired
      return refuse(absl::UnauthenticatedError(
          absl::StrCat(left.status().message(), "; ask the operator for a new one")));
    }
    return refuse(left.status());
  }
  v1::EnrollResponse response;
  MF_RETURN_IF_ERROR(Issue(request.csr_pem(), request.name(), &response));
  Log()->info("enrolled agent '{}' from {} with join token {} ({} uses left)", request.name(), peer,
              token->id, *left);
  return response;
}

absl::StatusOr<v1::RenewCertificateResponse> Enrollment::Renew(
    const std::string& peer_chain_pem, const v1::RenewCertificateRequest& request,
    const std::string& peer) {
  auto refuse = [&](const std::string& who, absl::Status s) {
    Log()->warn("refusing certificate renewal{}{} from {}: {}", who.empty() ? "" : " of ", who,
                peer, std::string(s.message()));
    return s;
  };
  MF_RETURN_IF_ERROR(RequireCa("renew agent certificates"));
  if (peer_chain_pem.empty()) {
    return refuse("", absl::UnauthenticatedError(
                          "renewal needs the agent's current certificate in the TLS handshake"));
  }
  absl::StatusOr<pki::CertInfo> who =
      pki::VerifyClientCertificate(peer_chain_pem, options_.trusted_pem, clock_->Now());
  if (!who.ok()) return refuse("", who.status());
  if (IsRevoked(who->common_name)) return refuse(who->common_name, RevokedError(who->common_name));
  if (absl::Status s = pki::ParseCsr(request.csr_pem()).status(); !s.ok()) {
    return refuse(who->common_name, absl::InvalidArgumentError(s.message()));
  }
  v1::RenewCertificateResponse response;
  MF_RETURN_IF_ERROR(Issue(request.csr_pem(), who->common_name, &response));
  Log()->info("renewed the certificate of agent '{}' (was serial={})", who->common_name,
              who->serial_hex);
  return response;
}

absl::StatusOr<Revocation> Enrollment::Revoke(const std::string& name, bool known_agent) {
  if (auto it = revoked_.find(name); it != revoked_.end()) return it->second;
  MF_ASSIGN_OR_RETURN(std::vector<IssuedCertificate> certs, store_->LoadCertificates(name));
  if (certs.empty() && !known_agent) {
    return absl::NotFoundError(
        absl::StrCat("no agent named '", name, "' has connected or enrolled"));
  }
  Revocation r;
  r.name = name;
  r.revoked_at = clock_->Now();
  for (const IssuedCertificate& c : certs) r.serials.push_back(c.serial_hex);
  MF_RETURN_IF_ERROR(store_->InsertRevocation(r));
  revoked_[name] = r;
  Log()->warn("revoked agent '{}' ({} certificates issued by this farm)", name, r.serials.size());
  return r;
}

}  // namespace musafarm::coordinator
