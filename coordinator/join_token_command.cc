#include "coordinator/join_token_command.h"

#include <unistd.h>

#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "common/pki.h"
#include "coordinator/host_store.h"
#include "coordinator/join_token.h"
#include "coordinator/store.h"

namespace musafarm::coordinator {
namespace {

std::string DefaultCoordinator() {
  char host[256] = {0};
  if (::gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') return "localhost:7070";
  return absl::StrCat(host, ":7070");
}

}  // namespace

int RunJoinTokenCreate(const JoinTokenCommandOptions& o, absl::Time now, std::ostream& out,
                       std::ostream& err) {
  const std::string tls_dir = o.tls_dir.empty() ? absl::StrCat(o.data_dir, "/pki") : o.tls_dir;
  const std::string ca_path = absl::StrCat(tls_dir, "/ca.crt");
  std::ifstream ca_file(ca_path);
  if (!ca_file) {
    err << "join-token create: no farm CA at " << ca_path
        << "; run `musafarm-coordinator ca init --data-dir " << o.data_dir << "` first\n";
    return 1;
  }
  std::stringstream ca_pem;
  ca_pem << ca_file.rdbuf();
  absl::StatusOr<std::string> pin = pki::PublicKeyPin(ca_pem.str());
  if (!pin.ok()) {
    err << "join-token create: " << ca_path << ": " << pin.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<NewJoinToken> token = MakeJoinToken(o.uses, o.ttl, o.description, now);
  if (!token.ok()) {
    err << "join-token create: " << token.status().message() << "\n";
    return 2;
  }
  absl::StatusOr<std::unique_ptr<Store>> store = OpenHostStore(o.data_dir, o.store);
  if (!store.ok()) {
    err << "join-token create: " << store.status().message() << "\n";
    return 1;
  }
  if (absl::Status s = (*store)->InsertJoinToken(token->row); !s.ok()) {
    err << "join-token create: " << s.message() << "\n";
    return 1;
  }
  const std::string coordinator = o.coordinator.empty() ? DefaultCoordinator() : o.coordinator;
  out << "join token " << token->row.id << ": " << o.uses << (o.uses == 1 ? " use" : " uses")
      << ", expires " << FormatUtc(token->row.expire_time) << " (shown once; it is not stored)\n"
      << token->text << "\n\n"
      << "enrol an agent with:\n"
      << "  musafarm-agent enroll --coordinator " << coordinator << " --token " << token->text
      << " --ca-pin " << *pin << " --name NAME --work-dir DIR\n";
  return 0;
}

int RunJoinTokenList(const JoinTokenCommandOptions& o, absl::Time now, std::ostream& out,
                     std::ostream& err) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenHostStore(o.data_dir, o.store);
  if (!store.ok()) {
    err << "join-token list: " << store.status().message() << "\n";
    return 1;
  }
  absl::StatusOr<std::vector<JoinToken>> tokens = (*store)->LoadJoinTokens();
  if (!tokens.ok()) {
    err << "join-token list: " << tokens.status().message() << "\n";
    return 1;
  }
  out << absl::StrFormat("%-8s  %-8s  %9s  %-20s  %s\n", "ID", "STATE", "USES LEFT", "EXPIRES",
                         "DESCRIPTION");
  for (const JoinToken& t : *tokens) {
    const char* state = t.uses_left <= 0 ? "used up" : t.expire_time <= now ? "expired" : "active";
    out << absl::StrFormat("%-8s  %-8s  %9d  %-20s  %s\n", t.id, state, t.uses_left,
                           FormatUtc(t.expire_time), t.description);
  }
  return 0;
}

}  // namespace musafarm::coordinator
