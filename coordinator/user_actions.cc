#include "coordinator/user_actions.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "coordinator/rerun.h"

namespace musafarm::coordinator {

void RecordAudit(UserAdmin* admin, const Principal& who, const std::string& peer,
                 const std::string& action, const std::string& target,
                 const absl::Status& outcome) {
  if (admin == nullptr) return;
  const Actor by{who.user, std::string(RoleName(who.role)), peer};
  if (absl::Status s = admin->Record(by, action, target, AuditOutcome(outcome), absl::Now());
      !s.ok()) {
    GetLogger("users")->error("audit line not written ({} {} by {}): {}", action, target, who.user,
                              s.ToString());
  }
}

std::optional<AuditEntry> SucceededAuditLine(const UserAdmin* admin, const Principal& who,
                                             const std::string& peer, const std::string& action) {
  if (admin == nullptr) return std::nullopt;
  return AuditLine(Actor{who.user, std::string(RoleName(who.role)), peer}, action, "",
                   AuditOutcome(absl::OkStatus()), absl::Now());
}

absl::StatusOr<v1::CancelResponse> CancelJobAs(UserApi& api, const AccessControl& access,
                                               UserAdmin* admin, const Principal& who,
                                               const std::string& peer, const std::string& id) {
  absl::StatusOr<v1::CancelResponse> r = [&]() -> absl::StatusOr<v1::CancelResponse> {
    absl::StatusOr<std::string> owner = api.OwnerOf(id);
    if (!owner.ok()) return owner.status();
    if (absl::Status s = access.Authorize(who, Action::kCancelJob, *owner); !s.ok()) return s;
    return api.Cancel(id);
  }();
  RecordAudit(admin, who, peer, "cancel", id, r.status());
  return r;
}

absl::StatusOr<v1::Job> RerunJobAs(UserApi& api, const AccessControl& access, UserAdmin* admin,
                                   const Principal& who, const std::string& peer,
                                   const v1::RerunRequest& request) {
  const std::string& id = request.job_id();
  absl::StatusOr<v1::Job> r = [&]() -> absl::StatusOr<v1::Job> {
    // A task id is no job: OwnerOf would answer for its job.
    if (id.empty() || id.find('/') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("rerun: '", id, "' is no job id (a number, e.g. 7)"));
    }
    absl::StatusOr<std::string> owner = api.OwnerOf(id);
    if (absl::IsNotFound(owner.status())) return NoJobToRerun(id);
    if (!owner.ok()) return owner.status();
    if (absl::Status s = access.Authorize(who, Action::kRerunJob, *owner); !s.ok()) return s;
    return api.Rerun(request, who.user);
  }();
  RecordAudit(admin, who, peer, "rerun", r.ok() ? absl::StrCat(id, " as ", r->id()) : id,
              r.status());
  return r;
}

}  // namespace musafarm::coordinator
