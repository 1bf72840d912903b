#include "coordinator/ca_init.h"

#include <arpa/inet.h>
#include <unistd.h>

#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "common/atomic_file.h"
#include "common/pki.h"
#include "common/status_macros.h"

namespace musafarm::coordinator {
namespace {

bool IsIpAddress(const std::string& s) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, s.c_str(), buf) == 1 || ::inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

std::vector<std::string> DefaultSans() {
  std::vector<std::string> sans = {"localhost", "127.0.0.1", "::1"};
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0' &&
      std::string(host) != "localhost") {
    sans.emplace_back(host);
  }
  return sans;
}

// "musafarm farm CA (HOST)", within X.509's 64 characters for a common name
// (a long host name is cut).
std::string CaName(absl::string_view host) {
  constexpr absl::string_view kPrefix = "musafarm farm CA (";
  return absl::StrCat(kPrefix, host.substr(0, 64 - kPrefix.size() - 1), ")");
}

}  // namespace

absl::Status CaInit(const CaInitOptions& options, std::ostream& out) {
  if (options.days <= 0) return absl::InvalidArgumentError("--days must be at least 1");
  const std::string dir =
      options.tls_dir.empty() ? absl::StrCat(options.data_dir, "/pki") : options.tls_dir;
  // ca.crt first: it is the file operators know the CA by.
  for (const char* name : {"ca.crt", "ca.key"}) {
    const std::string path = absl::StrCat(dir, "/", name);
    if (std::filesystem::exists(path)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "a CA already exists at ", path,
          "; a new CA would invalidate every agent certificate the old one signed, so remove "
          "the old files yourself if that is what you want"));
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  }
  const absl::Time now = absl::Now();
  // A little in the past, so that a peer whose clock is a bit behind accepts it.
  const absl::Time not_before = now - absl::Minutes(5);
  const absl::Time not_after = now + absl::Hours(24) * options.days;
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  MF_ASSIGN_OR_RETURN(const pki::Ca ca,
                      pki::MakeCa(CaName(host), not_before,
                                  not_after));

  pki::IssueOptions server;
  server.common_name = "musafarm-coordinator";
  server.server = true;
  server.not_before = not_before;
  server.not_after = not_after;
  const std::vector<std::string> sans = options.sans.empty() ? DefaultSans() : options.sans;
  for (const std::string& san : sans) {
    (IsIpAddress(san) ? server.ip_addresses : server.dns_names).push_back(san);
  }
  MF_ASSIGN_OR_RETURN(const std::string server_key, pki::GeneratePrivateKey());
  MF_ASSIGN_OR_RETURN(const std::string csr, pki::MakeCsr(server_key, server.common_name));
  MF_ASSIGN_OR_RETURN(const std::string server_cert, pki::SignCsr(ca, csr, server));

  // Keys first and private; ca.crt last, so that a run cut short is not taken
  // for a whole CA by the check above (the key alone is found too).
  MF_RETURN_IF_ERROR(WriteFileAtomically(absl::StrCat(dir, "/ca.key"), ca.key_pem, 0600));
  MF_RETURN_IF_ERROR(WriteFileAtomically(absl::StrCat(dir, "/server.key"), server_key, 0600));
  // The chain carries the CA: an agent enrolling with --ca-pin has only the
  // pin, and learns the CA from what the handshake sends.
  MF_RETURN_IF_ERROR(
      WriteFileAtomically(absl::StrCat(dir, "/server.crt"), server_cert + ca.cert_pem));
  MF_RETURN_IF_ERROR(WriteFileAtomically(absl::StrCat(dir, "/ca.crt"), ca.cert_pem));
  out << "made the farm CA and the coordinator's certificate in " << dir << ":\n"
      << "  ca.crt      the CA certificate: give it to agents (<work-dir>/pki/ca.crt) and CLI "
         "users (~/.config/musafarm/ca.crt or --ca)\n"
      << "  ca.key      the CA's private key: signs agent certificates; keep it secret\n"
      << "  server.crt  the coordinator's certificate, for " << absl::StrJoin(sans, ", ") << "\n"
      << "  server.key  its private key\n";
  return absl::OkStatus();
}

}  // namespace musafarm::coordinator
