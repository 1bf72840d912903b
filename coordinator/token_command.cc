#include "coordinator/token_command.h"

#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/clock.h"
#include "coordinator/host_store.h"
#include "coordinator/user_admin.h"

namespace musafarm::coordinator {
namespace {

absl::StatusOr<std::unique_ptr<UserAdmin>> OpenAdmin(const TokenCommandOptions& o) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenHostStore(o.data_dir, o.store);
  if (!store.ok()) return store.status();
  return std::make_unique<UserAdmin>(*std::move(store));
}

std::string State(const ApiToken& t, absl::Time now) {
  if (t.revoked()) return "revoked";
  if (t.expire_time <= now) return "expired";
  return "active";
}

}  // namespace

int RunTokenCreate(const TokenCommandOptions& o, absl::Time now, std::ostream& out,
                   std::ostream& err) {
  absl::StatusOr<std::unique_ptr<UserAdmin>> admin = OpenAdmin(o);
  if (!admin.ok()) {
    err << "token create: " << admin.status().message() << "\n";
    return 2;
  }
  const Actor by{absl::StrCat("host:", o.operator_name.empty() ? "unknown" : o.operator_name),
                 "admin", "host"};
  absl::StatusOr<NewApiToken> t = (*admin)->CreateToken(by, o.user, o.role, o.ttl, now);
  if (!t.ok()) {
    err << "token create: " << t.status().message() << "\n";
    return absl::IsInvalidArgument(t.status()) ? 2 : 1;
  }
  out << "API token " << t->row.id << " for " << t->row.user << " (" << t->row.role << "), "
      << (t->row.expire_time == absl::InfiniteFuture()
              ? std::string("no expiry")
              : absl::StrCat("expires ", FormatUtc(t->row.expire_time)))
      << " (shown once; only its hash is stored)\n"
      << t->text << "\n\n"
      << "use it with:  export MUSAFARM_TOKEN=<the token>   (or `token:` in "
         "~/.config/musafarm/config.yaml, mode 0600)\n";
  return 0;
}

int RunTokenList(const TokenCommandOptions& o, absl::Time now, std::ostream& out,
                 std::ostream& err) {
  absl::StatusOr<std::unique_ptr<UserAdmin>> admin = OpenAdmin(o);
  if (!admin.ok()) {
    err << "token list: " << admin.status().message() << "\n";
    return 2;
  }
  absl::StatusOr<std::vector<ApiToken>> tokens = (*admin)->ListTokens();
  if (!tokens.ok()) {
    err << "token list: " << tokens.status().message() << "\n";
    return 1;
  }
  out << absl::StrFormat("%-16s  %-16s  %-9s  %-7s  %-20s  %s\n", "ID", "USER", "ROLE", "STATE",
                         "EXPIRES", "CREATED BY");
  for (const ApiToken& t : *tokens) {
    out << absl::StrFormat(
        "%-16s  %-16s  %-9s  %-7s  %-20s  %s\n", t.id, t.user, t.role, State(t, now),
        t.expire_time == absl::InfiniteFuture() ? "never" : FormatUtc(t.expire_time),
        t.created_by);
  }
  return 0;
}

}  // namespace musafarm::coordinator
