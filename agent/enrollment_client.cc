#include "agent/enrollment_client.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/atomic_file.h"
#include "common/coordinator_targets.h"
#include "grpcpp/grpcpp.h"
#include "musafarm/v1/agent_service.grpc.pb.h"

namespace musafarm::agent {
namespace {

std::unique_ptr<v1::AgentService::Stub> Stub(const std::string& target, const ChannelTls& tls) {
  return v1::AgentService::NewStub(grpc::CreateChannel(target, MakeChannelCredentials(tls)));
}

void SetDeadline(grpc::ClientContext* ctx, absl::Duration timeout) {
  ctx->set_deadline(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(timeout));
}

absl::Status FromGrpc(const grpc::Status& s, const std::string& target) {
  const auto code = static_cast<absl::StatusCode>(s.error_code());
  if (code == absl::StatusCode::kUnavailable) {
    return absl::UnavailableError(
        absl::StrCat("cannot reach the coordinator at ", target, " over TLS: ", s.error_message()));
  }
  return absl::Status(code, s.error_message());
}

// Checks that `cert_pem` is for `key_pem` and names `name` before it replaces
// anything on disk.
absl::StatusOr<pki::CertInfo> CheckIssued(const std::string& key_pem, const std::string& cert_pem,
                                          const std::string& name) {
  absl::StatusOr<pki::CertInfo> info = pki::ParseCertificate(cert_pem);
  if (!info.ok()) return info.status();
  absl::StatusOr<bool> matches = pki::KeyMatchesCertificate(key_pem, cert_pem);
  if (!matches.ok()) return matches.status();
  if (!*matches) {
    return absl::InternalError("the coordinator returned a certificate for another key");
  }
  if (!name.empty() && info->common_name != name) {
    return absl::InternalError(absl::StrCat("the coordinator returned a certificate for '",
                                            info->common_name, "', not '", name, "'"));
  }
  return info;
}

}  // namespace

AgentPkiPaths DefaultPkiPaths(const std::string& work_dir) {
  const std::string dir = work_dir + "/pki";
  return {dir + "/agent.key", dir + "/agent.crt", dir + "/ca.crt"};
}

absl::Status WriteAgentPki(const AgentPkiPaths& paths, const std::string& key_pem,
                           const std::string& cert_pem, const std::string& ca_pem) {
  const std::filesystem::path dir = std::filesystem::path(paths.key).parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::FailedPreconditionError(absl::StrCat("cannot create ", dir.string(), ": ", ec.message()));
    ::chmod(dir.c_str(), 0700);  // best effort: the key file itself is 0600
  }
  if (!ca_pem.empty()) {
    if (absl::Status s = WriteFileAtomically(paths.ca, ca_pem, 0644); !s.ok()) return s;
  }
  const std::string next = paths.key + ".next";
  if (absl::Status s = WriteFileAtomically(next, key_pem, 0600); !s.ok()) return s;
  if (absl::Status s = WriteFileAtomically(paths.cert, cert_pem, 0644); !s.ok()) return s;
  if (::rename(next.c_str(), paths.key.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", next, " to ", paths.key, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::Status RecoverAgentPki(const AgentPkiPaths& paths) {
  const std::string next = paths.key + ".next";
  absl::StatusOr<std::string> next_pem = ReadPemFile(next);
  if (absl::IsNotFound(next_pem.status())) return absl::OkStatus();
  if (!next_pem.ok()) return next_pem.status();
  absl::StatusOr<std::string> cert_pem = ReadPemFile(paths.cert);
  const bool matches = cert_pem.ok() && pki::KeyMatchesCertificate(*next_pem, *cert_pem).value_or(false);
  const int rc = matches ? ::rename(next.c_str(), paths.key.c_str()) : ::unlink(next.c_str());
  if (rc != 0) {
    return absl::InternalError(absl::StrCat("cannot ", matches ? "rename " : "remove ", next, ": ",
                                            std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> TrustCaByPin(const std::vector<std::string>& host_ports,
                                         const std::string& pin, absl::Duration timeout) {
  const std::string want = absl::AsciiStrToLower(pin);
  if (want.rfind("sha256:", 0) != 0 || want.size() != 7 + 64) {
    return absl::InvalidArgumentError(
        absl::StrCat("--ca-pin '", pin, "': expected sha256: and 64 hex digits, as "
                     "`musafarm-coordinator join-token create` prints"));
  }
  // A standby presents the same certificates as the active one: the first
  // that answers decides; only unreachable ones are passed over.
  absl::StatusOr<std::vector<std::string>> certs =
      absl::UnavailableError("no coordinator address given");
  std::string host_port;
  for (const std::string& h : host_ports) {
    host_port = h;
    certs = pki::FetchServerCertificates(host_port, timeout);
    if (certs.ok()) break;
  }
  if (!certs.ok()) return certs.status();
  std::vector<std::string> offered;
  for (const std::string& cert : *certs) {
    absl::StatusOr<std::string> got = pki::PublicKeyPin(cert);
    if (!got.ok()) continue;
    if (*got == want) return cert;
    absl::StatusOr<pki::CertInfo> info = pki::ParseCertificate(cert);
    offered.push_back(absl::StrCat("'", info.ok() ? info->common_name : "?", "' ", *got));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "CA pin mismatch: no certificate the coordinator at ", host_port, " presented has pin ",
      want, " (it presented ", offered.empty() ? "none" : absl::StrJoin(offered, ", "),
      "); check the address and the pin, or someone is in between"));
}

absl::StatusOr<pki::CertInfo> EnrollAgent(const EnrollRequestOptions& o) {
  absl::StatusOr<std::string> key = pki::GeneratePrivateKey();
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> csr = pki::MakeCsr(*key, o.name);
  if (!csr.ok()) return csr.status();
  v1::EnrollRequest req;
  req.set_token(o.token);
  req.set_name(o.name);
  req.set_csr_pem(*csr);
  v1::EnrollResponse resp;
  ChannelTls tls;
  tls.ca_pem = o.ca_pem;
  CoordinatorTargets targets(o.coordinators);
  FailoverPolicy policy;
  // A join token may be good for one use: an Enroll that may have reached
  // the active coordinator is not sent again (the error says so).
  policy.idempotent = false;
  policy.give_up_after = o.timeout;
  policy.prepare = [&o](grpc::ClientContext* ctx) { SetDeadline(ctx, o.timeout); };
  if (grpc::Status s = CallActive(targets, policy,
                                  [&](const std::string& address, grpc::ClientContext* ctx) {
                                    return Stub(address, tls)->Enroll(ctx, req, &resp);
                                  });
      !s.ok()) {
    return FromGrpc(s, absl::StrJoin(o.coordinators, ","));
  }
  absl::StatusOr<pki::CertInfo> info = CheckIssued(*key, resp.certificate_pem(), o.name);
  if (!info.ok()) return info.status();
  if (absl::Status s = WriteAgentPki(o.paths, *key, resp.certificate_pem(), o.ca_pem); !s.ok()) {
    return s;
  }
  return info;
}

absl::StatusOr<pki::CertInfo> RenewAgentCertificate(const std::string& coordinator,
                                                    const ChannelTls& tls,
                                                    const AgentPkiPaths& paths,
                                                    absl::Duration timeout, ChannelTls* renewed) {
  absl::StatusOr<pki::CertInfo> current = pki::ParseCertificate(tls.cert_pem);
  if (!current.ok()) return current.status();
  absl::StatusOr<std::string> key = pki::GeneratePrivateKey();
  if (!key.ok()) return key.status();
  absl::StatusOr<std::string> csr = pki::MakeCsr(*key, current->common_name);
  if (!csr.ok()) return csr.status();
  v1::RenewCertificateRequest req;
  req.set_csr_pem(*csr);
  v1::RenewCertificateResponse resp;
  grpc::ClientContext ctx;
  SetDeadline(&ctx, timeout);
  if (grpc::Status s = Stub(coordinator, tls)->RenewCertificate(&ctx, req, &resp); !s.ok()) {
    return FromGrpc(s, coordinator);
  }
  absl::StatusOr<pki::CertInfo> info =
      CheckIssued(*key, resp.certificate_pem(), current->common_name);
  if (!info.ok()) return info.status();
  if (absl::Status s = WriteAgentPki(paths, *key, resp.certificate_pem(), ""); !s.ok()) return s;
  renewed->ca_pem = tls.ca_pem;
  renewed->cert_pem = resp.certificate_pem();
  renewed->key_pem = *std::move(key);
  return info;
}

}  // namespace musafarm::agent
