// `musafarm token create|list|revoke` and `musafarm audit` (admin): users'
// API tokens and the audit log, over the user API.
#include <ostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cli/client.h"
#include "cli/commands/commands.h"
#include "cli/render.h"
#include "common/duration_text.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli {
namespace {

absl::Time TimeOf(const google::protobuf::Timestamp& ts) {
  return absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
}

std::string When(const google::protobuf::Timestamp& ts, absl::TimeZone tz) {
  return FormatDateTime(TimeOf(ts), tz);
}

std::string TokenState(const v1::ApiTokenInfo& t, absl::Time now) {
  if (t.has_revoked_time()) return "revoked";
  if (t.has_expire_time() && TimeOf(t.expire_time()) <= now) return "expired";
  return "active";
}

std::vector<std::string> RenderTokens(const v1::ListTokensResponse& resp, absl::Time now,
                                      absl::TimeZone tz) {
  std::vector<Row> rows;
  for (const v1::ApiTokenInfo& t : resp.tokens()) {
    rows.push_back({t.id(), t.user(), t.role(), TokenState(t, now), When(t.created_time(), tz),
                    t.has_expire_time() ? When(t.expire_time(), tz) : "never", t.created_by()});
  }
  return RenderTable({"ID", "USER", "ROLE", "STATE", "CREATED", "EXPIRES", "CREATED BY"}, rows);
}

}  // namespace

int RunTokenCreate(const CommandEnv& env, const std::string& user, const std::string& role,
                   const std::string& expires) {
  v1::CreateTokenRequest req;
  req.set_user(user);
  req.set_role(role);
  if (!expires.empty()) {
    absl::Duration ttl;
    if (!ParseDurationText(expires, &ttl)) {
      *env.err << "musafarm: token create: --expires " << expires
               << ": expected a duration like 90d, 12h, 30m\n";
      return kExitUsage;
    }
    req.set_ttl_seconds(absl::ToInt64Seconds(ttl));
  }
  v1::CreateTokenResponse resp;
  if (grpc::Status s = CallActive<v1::UserService>(
          env, Repeat::kOnce,
          [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.CreateToken(ctx, req, &resp);
          });
      !s.ok()) {
    return ReportRpcError(env, s, "musafarm token list");
  }
  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
    return kExitOk;
  }
  const v1::ApiTokenInfo& t = resp.token();
  *env.out << "API token " << t.id() << " for " << t.user() << " (" << t.role() << "), "
           << (t.has_expire_time() ? absl::StrCat("expires ", When(t.expire_time(), env.tz))
                                   : std::string("no expiry"))
           << " (shown once; only its hash is stored)\n"
           << resp.secret_token() << "\n";
  return kExitOk;
}

int RunTokenList(const CommandEnv& env) {
  v1::ListTokensResponse resp;
  if (grpc::Status s = CallActive<v1::UserService>(
          env, Repeat::kIdempotent,
          [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.ListTokens(ctx, v1::ListTokensRequest(), &resp);
          });
      !s.ok()) {
    return ReportRpcError(env, s);
  }
  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
    return kExitOk;
  }
  for (const std::string& l : RenderTokens(resp, env.clock->Now(), env.tz)) *env.out << l << "\n";
  return kExitOk;
}

int RunTokenRevoke(const CommandEnv& env, const std::string& id_or_user) {
  v1::RevokeTokenRequest req;
  req.set_id_or_user(id_or_user);
  v1::RevokeTokenResponse resp;
  if (grpc::Status s = CallActive<v1::UserService>(
          env, Repeat::kOnce,
          [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.RevokeToken(ctx, req, &resp);
          });
      !s.ok()) {
    return ReportRpcError(env, s, "musafarm token list");
  }
  if (env.output != OutputFormat::kTable) {
    PrintMessage(env, resp);
    return kExitOk;
  }
  for (const v1::ApiTokenInfo& t : resp.revoked()) {
    *env.out << "revoked API token " << t.id() << " of " << t.user() << " (" << t.role() << ")\n";
  }
  return kExitOk;
}

int RunAudit(const CommandEnv& env, const std::string& user, const std::string& since,
             int limit) {
  v1::ListAuditRequest req;
  req.set_user(user);
  req.set_limit(limit);
  if (!since.empty()) {
    absl::Duration ago;
    if (!ParseDurationText(since, &ago)) {
      *env.err << "musafarm: audit: --since " << since
               << ": expected a duration like 1h, 30m, 7d\n";
      return kExitUsage;
    }
    const int64_t us = absl::ToUnixMicros(env.clock->Now() - ago);
    req.mutable_since()->set_seconds(us / 1000000);
    req.mutable_since()->set_nanos(static_cast<int32_t>(us % 1000000) * 1000);
  }
  v1::ListAuditResponse resp;
  if (grpc::Status s = CallActive<v1::UserService>(
          env, Repeat::kIdempotent,
          [&](v1::UserService::Stub& stub, grpc::ClientContext* ctx) {
            return stub.ListAudit(ctx, req, &resp);
          });
      !s.ok()) {
    return ReportRpcError(env, s);
  }
  if (env.output != OutputFormat::kTable) {
    for (const v1::AuditRecord& r : resp.records()) PrintMessage(env, r);
    return kExitOk;
  }
  std::vector<Row> rows;
  for (const v1::AuditRecord& r : resp.records()) {
    rows.push_back({When(r.time(), env.tz), r.user(), r.role(), r.action(), r.target(), r.peer(),
                    r.outcome()});
  }
  for (const std::string& l :
       RenderTable({"TIME", "USER", "ROLE", "ACTION", "TARGET", "FROM", "OUTCOME"}, rows)) {
    *env.out << l << "\n";
  }
  return kExitOk;
}

}  // namespace musafarm::cli
