#include "agent/enroll_command.h"

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/enrollment_client.h"
#include "common/clock.h"
#include "common/tls_channel.h"

namespace musafarm::agent {

int RunEnrollCommand(const EnrollCommandOptions& o, std::ostream& out, std::ostream& err) {
  if (o.coordinators.empty() || o.token.empty()) {
    err << "musafarm-agent enroll: --coordinator and --token are required\n";
    return 2;
  }
  if (o.ca_file.empty() == o.ca_pin.empty()) {
    err << "musafarm-agent enroll: give exactly one of --ca FILE (the farm's ca.crt) and "
           "--ca-pin sha256:HEX (as `musafarm-coordinator join-token create` prints)\n";
    return 2;
  }
  std::string ca_pem;
  if (!o.ca_file.empty()) {
    absl::StatusOr<std::string> pem = ReadPemFile(o.ca_file);
    if (!pem.ok()) {
      err << "musafarm-agent enroll: --ca: "
          << (absl::IsNotFound(pem.status()) ? "no such file " : "") << pem.status().message()
          << "\n";
      return 2;
    }
    ca_pem = *std::move(pem);
  } else {
    absl::StatusOr<std::string> pinned = TrustCaByPin(o.coordinators, o.ca_pin, absl::Seconds(10));
    if (!pinned.ok()) {
      err << "musafarm-agent enroll: " << pinned.status().message() << "\n";
      return absl::IsInvalidArgument(pinned.status()) ? 2 : 1;
    }
    ca_pem = *std::move(pinned);
  }
  EnrollRequestOptions request;
  request.coordinators = o.coordinators;
  request.token = o.token;
  request.name = o.name;
  request.ca_pem = ca_pem;
  request.paths = DefaultPkiPaths(o.work_dir);
  absl::StatusOr<pki::CertInfo> cert = EnrollAgent(request);
  if (!cert.ok()) {
    err << "musafarm-agent enroll: enrolment of '" << o.name << "' failed: "
        << cert.status().message() << "\n";
    return 1;
  }
  out << "enrolled as '" << cert->common_name << "': certificate serial " << cert->serial_hex
      << " valid until " << FormatUtc(cert->not_after)
      << " (renewed automatically while the agent runs)\n"
      << "wrote " << request.paths.key << ", " << request.paths.cert << ", " << request.paths.ca
      << "\n"
      << "start the agent with: musafarm-agent --coordinator " << o.coordinator << " --work-dir "
      << o.work_dir << "\n";
  return 0;
}

}  // namespace musafarm::agent
