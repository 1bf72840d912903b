#include "coordinator/http_auth.h"

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace musafarm::coordinator {

std::string BearerOf(const httplib::Request& req) {
  const std::string auth = req.get_header_value("Authorization");
  absl::string_view v = auth;
  if (absl::ConsumePrefix(&v, "Bearer ")) return std::string(absl::StripAsciiWhitespace(v));
  const std::string cookies = req.get_header_value("Cookie");
  for (absl::string_view part : absl::StrSplit(cookies, ';')) {
    part = absl::StripAsciiWhitespace(part);
    if (absl::ConsumePrefix(&part, kSessionCookie) && absl::ConsumePrefix(&part, "=")) {
      return std::string(part);
    }
  }
  return "";
}

absl::StatusOr<Principal> Check(const AccessControl& access, const httplib::Request& req,
                                Action action, const std::string& owner) {
  // No OS user over HTTP: in --insecure mode a request without a token is
  // "web", as the CLI's calls are the OS user they name.
  absl::StatusOr<Principal> who = access.Authenticate(BearerOf(req), "web", absl::Now());
  if (!who.ok()) return who.status();
  if (absl::Status s = access.Authorize(*who, action, owner); !s.ok()) return s;
  return who;
}

void WriteError(httplib::Response& res, const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kUnauthenticated:
      res.status = 401;
      break;
    case absl::StatusCode::kPermissionDenied:
      res.status = 403;
      break;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
      res.status = 400;
      break;
    case absl::StatusCode::kNotFound:
      res.status = 404;
      break;
    case absl::StatusCode::kUnavailable:
      res.status = 503;
      break;
    default:
      res.status = 500;
  }
  res.set_content(std::string(s.message()) + "\n", "text/plain; charset=utf-8");
}

}  // namespace musafarm::coordinator
