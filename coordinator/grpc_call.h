#pragma once

// What every unary handler of the user-facing services (UserServiceImpl,
// ScheduleServiceImpl) does around its work: admit the caller, answer at once
// or on the core loop.

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/event_loop.h"
#include "common/grpc_status.h"
#include "coordinator/access_control.h"
#include "coordinator/user_admin.h"
#include "grpcpp/grpcpp.h"

namespace musafarm::coordinator {

// Finishes a call without the core: refused, or answered here.
inline grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* ctx,
                                           const absl::Status& why) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(ToGrpc(why));
  return reactor;
}

// Runs `fn` on the core loop and finishes the call with its status. Request and
// response stay valid until Finish.
template <typename Fn>
grpc::ServerUnaryReactor* OnLoop(grpc::CallbackServerContext* ctx, EventLoop* loop, Fn fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  loop->Post([reactor, fn = std::move(fn)]() mutable { reactor->Finish(ToGrpc(fn())); });
  return reactor;
}

// The value of metadata `key` ("" when absent).
std::string CallMetadata(const grpc::CallbackServerContext* ctx, absl::string_view key);

// Authenticates the call (its bearer token from `authorization` metadata, in
// --insecure mode the OS user from `x-musafarm-os-user`) and authorizes `what`.
// A refusal of a state-changing call (`audit_action` non-empty) is written to
// the audit log through `admin` (may be null).
absl::StatusOr<Principal> AdmitCall(grpc::CallbackServerContext* ctx, const AccessControl& access,
                                    UserAdmin* admin, Action what,
                                    const std::string& audit_action,
                                    const std::string& audit_target);

}  // namespace musafarm::coordinator
