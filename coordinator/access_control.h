#pragma once

// Who is calling, and may they do this: the one place that decides, for the
// gRPC user API (UserServiceImpl) and the HTTP dashboard alike. No gRPC here:
// callers pass the bearer token and the claimed OS user they took from their
// own transport.
//
// Roles (docs/security.md has the table):
//   viewer     reads: jobs, logs, artifacts, agents, watch
//   submitter  a viewer who also submits, and cancels or reruns their own jobs
//   admin      everything: any job, drain/undrain, agent revocation, tokens,
//              the audit log, schedules

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/store.h"

namespace musafarm::coordinator {

enum class Role { kViewer, kSubmitter, kAdmin };

// "viewer", "submitter", "admin".
absl::string_view RoleName(Role role);
// INVALID_ARGUMENT naming the roles there are.
absl::StatusOr<Role> ParseRole(absl::string_view name);

struct Principal {
  std::string user;
  Role role = Role::kViewer;
  std::string token_id;   // empty without a token (insecure mode)
  bool insecure = false;  // the user is the OS user the client claimed: nothing checked it
};

enum class Action {
  kRead,
  kSubmit,
  kCancelJob,
  kRerunJob,
  kDrainAgent,
  kRevokeAgent,
  kManageTokens,
  kReadAudit,
  kManageSchedules,
};

// What the action is, for messages ("cancel jobs") and the audit log ("cancel").
absl::string_view ActionDescription(Action action);

// Thread-safe: any gRPC or HTTP thread may call it.
class AccessControl {
 public:
  // `tokens`: a store connection for this object alone (API tokens are read
  // from it at every call, so a revocation or a token made on the host by
  // `musafarm-coordinator token create` counts at once); null: no token is
  // known. `insecure`: the server is plaintext (--insecure), where a call
  // without a token is the OS user the client names, as admin.
  AccessControl(std::unique_ptr<Store> tokens, bool insecure);

  // bearer: the token from `authorization: Bearer ...` metadata (or a
  // cookie); may be empty. os_user: what the CLI claims in insecure mode
  // (metadata `x-musafarm-os-user`). UNAUTHENTICATED for a missing, malformed,
  // unknown, expired or revoked token, saying which and what to do, and never
  // quoting the token; INTERNAL when the store cannot be read.
  absl::StatusOr<Principal> Authenticate(absl::string_view bearer, absl::string_view os_user,
                                         absl::Time now) const;

  // owner: the job's submitter for job actions (kCancelJob, kRerunJob); empty
  // otherwise. PERMISSION_DENIED naming the user, the role and what it lacks.
  absl::Status Authorize(const Principal& who, Action what, absl::string_view owner = {}) const;

  bool insecure() const { return insecure_; }

 private:
  const bool insecure_;
  mutable absl::Mutex mu_;
  const std::unique_ptr<Store> tokens_ ABSL_PT_GUARDED_BY(mu_);
};

}  // namespace musafarm::coordinator
