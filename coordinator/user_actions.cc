#include "coordinator/user_actions.h"

#include "absl/time/clock.h"
#include "common/logging.h"

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

}  // namespace musafarm::coordinator
