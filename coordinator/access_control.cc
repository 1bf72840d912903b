#include "coordinator/access_control.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "coordinator/api_token.h"

namespace musafarm::coordinator {
namespace {

constexpr absl::string_view kNoTokenHelp =
    "set MUSAFARM_TOKEN or `token:` in ~/.config/musafarm/config.yaml; an admin makes one with "
    "`musafarm token create`";

absl::Status Unauthenticated(absl::string_view why) {
  return absl::UnauthenticatedError(absl::StrCat(why, "; ", kNoTokenHelp));
}

}  // namespace

absl::string_view RoleName(Role role) {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kSubmitter:
      return "submitter";
    case Role::kAdmin:
      return "admin";
  }
  return "unknown";
}

absl::StatusOr<Role> ParseRole(absl::string_view name) {
  for (Role r : {Role::kViewer, Role::kSubmitter, Role::kAdmin}) {
    if (name == RoleName(r)) return r;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown role '", name, "'; roles are viewer, submitter and admin"));
}

absl::string_view ActionDescription(Action action) {
  switch (action) {
    case Action::kRead:
      return "read the farm";
    case Action::kSubmit:
      return "submit jobs";
    case Action::kCancelJob:
      return "cancel jobs";
    case Action::kRerunJob:
      return "rerun jobs";
    case Action::kDrainAgent:
      return "drain or undrain agents";
    case Action::kRevokeAgent:
      return "revoke agents";
    case Action::kManageTokens:
      return "manage API tokens";
    case Action::kReadAudit:
      return "read the audit log";
    case Action::kManageSchedules:
      return "manage schedules";
  }
  return "do that";
}

AccessControl::AccessControl(std::unique_ptr<Store> tokens, bool insecure)
    : insecure_(insecure), tokens_(std::move(tokens)) {}

absl::StatusOr<Principal> AccessControl::Authenticate(absl::string_view bearer,
                                                      absl::string_view os_user,
                                                      absl::Time now) const {
  if (bearer.empty()) {
    if (!insecure_) return Unauthenticated("no API token");
    // Plaintext: whoever reaches the port could claim anything anyway.
    Principal p;
    p.user = os_user.empty() ? "unknown" : std::string(os_user);
    p.role = Role::kAdmin;
    p.insecure = true;
    return p;
  }
  absl::StatusOr<ParsedApiToken> parsed = ParseApiToken(bearer);
  if (!parsed.ok()) return Unauthenticated(parsed.status().message());
  absl::StatusOr<ApiToken> row = absl::NotFoundError("no token store");
  if (tokens_ != nullptr) {
    absl::MutexLock lock(&mu_);
    row = tokens_->LoadApiToken(parsed->id);
  }
  // One answer for an unknown id and a wrong secret: a caller learns nothing
  // about which ids exist.
  const std::string invalid = absl::StrCat("API token ", parsed->id,
                                           " is not valid here (unknown id or wrong secret)");
  if (absl::IsNotFound(row.status())) return Unauthenticated(invalid);
  if (!row.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot check API token ", parsed->id, ": ", row.status().message()));
  }
  if (!ApiTokenSecretMatches(*row, parsed->secret)) return Unauthenticated(invalid);
  if (row->revoked()) {
    return Unauthenticated(absl::StrCat("API token ", row->id, " of user ", row->user,
                                        " was revoked at ", FormatUtc(row->revoked_at)));
  }
  if (row->expire_time <= now) {
    return Unauthenticated(absl::StrCat("API token ", row->id, " of user ", row->user,
                                        " expired at ", FormatUtc(row->expire_time)));
  }
  absl::StatusOr<Role> role = ParseRole(row->role);
  if (!role.ok()) {
    return absl::InternalError(
        absl::StrCat("API token ", row->id, " is stored with ", role.status().message()));
  }
  Principal p;
  p.user = row->user;
  p.role = *role;
  p.token_id = row->id;
  return p;
}

absl::Status AccessControl::Authorize(const Principal& who, Action what,
                                      absl::string_view owner) const {
  if (who.role == Role::kAdmin || what == Action::kRead) return absl::OkStatus();
  const std::string whom =
      absl::StrCat("user ", who.user, " (role ", RoleName(who.role), ")");
  if (who.role == Role::kSubmitter) {
    if (what == Action::kSubmit) return absl::OkStatus();
    if (what == Action::kCancelJob || what == Action::kRerunJob) {
      if (!owner.empty() && owner == who.user) return absl::OkStatus();
      return absl::PermissionDeniedError(absl::StrCat(
          whom, " may ", ActionDescription(what), " they submitted themselves; this one was ",
          owner.empty() ? "submitted by nobody known" : absl::StrCat("submitted by ", owner),
          "; an admin can"));
    }
  }
  return absl::PermissionDeniedError(absl::StrCat(
      whom, " cannot ", ActionDescription(what), ": the ", RoleName(who.role), " role ",
      who.role == Role::kViewer ? "only reads" : "submits and cancels its own jobs only",
      "; ask an admin"));
}

}  // namespace musafarm::coordinator
