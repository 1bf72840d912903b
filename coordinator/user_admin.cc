#include "coordinator/user_admin.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "coordinator/access_control.h"

namespace musafarm::coordinator {

AuditEntry AuditLine(const Actor& by, absl::string_view action, absl::string_view target,
                     absl::string_view outcome, absl::Time now) {
  AuditEntry e;
  e.time = now;
  e.user = by.user;
  e.role = by.role;
  e.action = std::string(action);
  e.target = std::string(target);
  e.peer = by.peer;
  e.outcome = std::string(outcome);
  return e;
}

std::string AuditOutcome(const absl::Status& s) {
  if (s.ok()) return "ok";
  if (absl::IsPermissionDenied(s)) return absl::StrCat("denied: ", s.message());
  return absl::StrCat("error: ", s.message());
}

UserAdmin::UserAdmin(std::unique_ptr<Store> store) : store_(std::move(store)) {}

absl::StatusOr<NewApiToken> UserAdmin::CreateToken(const Actor& by, absl::string_view user,
                                                   absl::string_view role, absl::Duration ttl,
                                                   absl::Time now) {
  absl::StatusOr<Role> parsed = ParseRole(role);
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<NewApiToken> token = MakeApiToken(user, role, ttl, by.user, now);
  if (!token.ok()) return token.status();
  const AuditEntry line = AuditLine(
      by, "token.create", absl::StrCat(token->row.id, " (", user, ", ", role, ")"), "ok", now);
  absl::MutexLock lock(&mu_);
  if (absl::Status s = store_->InsertApiToken(token->row, line); !s.ok()) return s;
  GetLogger("users")->info("{} made API token {} for {} ({}) from {}", by.user, token->row.id,
                           token->row.user, token->row.role, by.peer);
  return token;
}

absl::StatusOr<std::vector<ApiToken>> UserAdmin::ListTokens() {
  absl::MutexLock lock(&mu_);
  return store_->LoadApiTokens();
}

absl::StatusOr<std::vector<ApiToken>> UserAdmin::RevokeTokens(const Actor& by,
                                                              absl::string_view id_or_user,
                                                              absl::Time now) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::vector<ApiToken>> all = store_->LoadApiTokens();
  if (!all.ok()) return all.status();
  std::vector<ApiToken> matched;
  for (const ApiToken& t : *all) {
    if (t.id == id_or_user) matched = {t};
  }
  if (matched.empty()) {
    for (const ApiToken& t : *all) {
      if (t.user == id_or_user && !t.revoked()) matched.push_back(t);
    }
  }
  if (matched.empty()) {
    return absl::NotFoundError(absl::StrCat("no API token with id '", id_or_user,
                                            "' and no unrevoked token of a user so named; "
                                            "`musafarm token list` shows them"));
  }
  for (ApiToken& t : matched) {
    const AuditEntry line = AuditLine(
        by, "token.revoke", absl::StrCat(t.id, " (", t.user, ", ", t.role, ")"), "ok", now);
    if (absl::Status s = store_->RevokeApiToken(t.id, now, line); !s.ok()) return s;
    if (!t.revoked()) t.revoked_at = now;
    GetLogger("users")->info("{} revoked API token {} of {} from {}", by.user, t.id, t.user,
                             by.peer);
  }
  return matched;
}

absl::Status UserAdmin::Record(const Actor& by, absl::string_view action, absl::string_view target,
                               absl::string_view outcome, absl::Time now) {
  Mutation m;
  m.audit.push_back(AuditLine(by, action, target, outcome, now));
  absl::MutexLock lock(&mu_);
  return store_->Commit(m);
}

absl::StatusOr<std::vector<AuditEntry>> UserAdmin::ListAudit(const AuditFilter& filter) {
  absl::MutexLock lock(&mu_);
  return store_->LoadAudit(filter);
}

}  // namespace musafarm::coordinator
