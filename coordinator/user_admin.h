#pragma once

// What admins do with users: make, list and revoke API tokens, and read the
// audit log; and the one way an audit line is written for a call that changes
// the farm. Used by the user API (over gRPC) and by the host's
// `musafarm-coordinator token create|list` (on the store directly, beside a
// running coordinator). Who may call it is AccessControl's business, not its.

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/api_token.h"
#include "coordinator/store.h"

namespace musafarm::coordinator {

// Who acts, for the audit log: a user with a role, calling from `peer`.
struct Actor {
  std::string user;
  std::string role;
  std::string peer;  // e.g. "ipv4:127.0.0.1:40000"; "host" for host commands
};

// Thread-safe: its calls are serialized on its own store connection.
class UserAdmin {
 public:
  // `store`: a connection for this object alone.
  explicit UserAdmin(std::unique_ptr<Store> store);

  // Makes a token for `user` with `role` good for `ttl` (InfiniteDuration:
  // until revoked), stores its hash and the audit line in one transaction, and
  // returns its text (shown once). INVALID_ARGUMENT for a bad user or role.
  absl::StatusOr<NewApiToken> CreateToken(const Actor& by, absl::string_view user,
                                          absl::string_view role, absl::Duration ttl,
                                          absl::Time now);
  // Every token, oldest first; rows carry no secret.
  absl::StatusOr<std::vector<ApiToken>> ListTokens();
  // Revokes the token with id `id_or_user`, or else every unrevoked token of
  // the user so named, one audit line each. NOT_FOUND when neither matches.
  // Returns the tokens as revoked.
  absl::StatusOr<std::vector<ApiToken>> RevokeTokens(const Actor& by,
                                                      absl::string_view id_or_user,
                                                      absl::Time now);

  // Appends one audit line: `by` did `action` on `target` at `now`, with
  // `outcome` ("ok", "denied: ...", "error: ...").
  absl::Status Record(const Actor& by, absl::string_view action, absl::string_view target,
                      absl::string_view outcome, absl::Time now);
  absl::StatusOr<std::vector<AuditEntry>> ListAudit(const AuditFilter& filter);

 private:
  absl::Mutex mu_;
  const std::unique_ptr<Store> store_ ABSL_PT_GUARDED_BY(mu_);
};

// One audit line: `by` did `action` on `target` at `now`, with `outcome`.
AuditEntry AuditLine(const Actor& by, absl::string_view action, absl::string_view target,
                     absl::string_view outcome, absl::Time now);

// The audit outcome for a call that ended with `s`: "ok", "denied: <message>"
// (PERMISSION_DENIED) or "error: <message>".
std::string AuditOutcome(const absl::Status& s);

}  // namespace musafarm::coordinator
