#include "coordinator/grpc_call.h"

#include "absl/strings/match.h"
#include "absl/time/clock.h"
#include "coordinator/user_actions.h"

namespace musafarm::coordinator {

std::string CallMetadata(const grpc::CallbackServerContext* ctx, absl::string_view key) {
  auto it = ctx->client_metadata().find(grpc::string_ref(key.data(), key.size()));
  if (it == ctx->client_metadata().end()) return "";
  return std::string(it->second.data(), it->second.size());
}

absl::StatusOr<Principal> AdmitCall(grpc::CallbackServerContext* ctx, const AccessControl& access,
                                    UserAdmin* admin, Action what,
                                    const std::string& audit_action,
                                    const std::string& audit_target) {
  std::string bearer = CallMetadata(ctx, "authorization");
  if (!bearer.empty()) {
    if (!absl::StartsWith(bearer, "Bearer ")) {
      return absl::UnauthenticatedError(
          "the authorization metadata is not \"Bearer <API token>\"");
    }
    bearer.erase(0, 7);
  }
  absl::StatusOr<Principal> who =
      access.Authenticate(bearer, CallMetadata(ctx, "x-musafarm-os-user"), absl::Now());
  if (!who.ok()) return who.status();
  if (absl::Status s = access.Authorize(*who, what); !s.ok()) {
    if (!audit_action.empty()) RecordAudit(admin, *who, ctx->peer(), audit_action, audit_target, s);
    return s;
  }
  return who;
}

}  // namespace musafarm::coordinator
