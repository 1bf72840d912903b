#pragma once

// The user calls whose permission depends on the object they act on, and the
// audit line every state-changing call leaves: one implementation for the
// gRPC user API (UserServiceImpl) and the dashboard's POSTs, so the two can
// never decide differently. Called on the core loop (UserApi's rule).

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "coordinator/access_control.h"
#include "coordinator/user_admin.h"
#include "coordinator/user_api.h"

namespace musafarm::coordinator {

// Writes one audit line: `who`, calling from `peer`, did `action` on `target`
// with `outcome`. No-op without `admin`; a failure is logged, never returned
// (the call's own state change is already committed).
void RecordAudit(UserAdmin* admin, const Principal& who, const std::string& peer,
                 const std::string& action, const std::string& target,
                 const absl::Status& outcome);

// The line RecordAudit would write for `action` by `who` that succeeds, for
// a caller that commits it with the call's own change (Submit); none without
// `admin` (no audit log). The target is the caller's to set.
std::optional<AuditEntry> SucceededAuditLine(const UserAdmin* admin, const Principal& who,
                                             const std::string& peer, const std::string& action);

// Cancels job `id` for `who` (authenticated already): allowed for admins and
// for the job's own submitter. Audited as "cancel", allowed or not.
absl::StatusOr<v1::CancelResponse> CancelJobAs(UserApi& api, const AccessControl& access,
                                               UserAdmin* admin, const Principal& who,
                                               const std::string& peer, const std::string& id);

// Reruns job `request.job_id()` for `who` (authenticated already): allowed
// for those who may cancel it (admins, and its own submitter), since it runs
// the job's inputs and pipeline again. The new job is `who`'s, admitted as
// their submission is (limits, secrets). Audited as "rerun" of the old job,
// naming the new one when there is one.
absl::StatusOr<v1::Job> RerunJobAs(UserApi& api, const AccessControl& access, UserAdmin* admin,
                                   const Principal& who, const std::string& peer,
                                   const v1::RerunRequest& request);

}  // namespace musafarm::coordinator
