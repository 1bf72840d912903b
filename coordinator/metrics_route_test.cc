#include "coordinator/metrics_route.h"

#include "coordinator/access_control.h"
#include "coordinator/http_auth.h"
#include "coordinator/http_server.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

// /metrics checks a token through AccessControl unless it is public.
TEST(MetricsRouteTest, NeedsATokenUnlessPublic) {
  AccessControl access(nullptr, /*insecure=*/false);
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  HttpServer server(o);
  bool is_public = false;
  AddMetricsRoute(
      server.routes(),
      [&](const httplib::Request& req) -> absl::Status {
        if (is_public) return absl::OkStatus();
        return Check(access, req, Action::kRead).status();
      },
      []() -> absl::StatusOr<std::string> { return std::string("m 1\n"); });
  absl::StatusOr<int> port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  httplib::Client client("127.0.0.1", *port);
  auto r = client.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401) << r->body;
  r = client.Get("/metrics", {{"Authorization", "Bearer mfu1.nope.s3cr3tvalue"}});
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 401) << r->body;
  EXPECT_EQ(r->body.find("s3cr3tvalue"), std::string::npos) << "the token is never quoted";
  is_public = true;
  r = client.Get("/metrics");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, "m 1\n");
  EXPECT_EQ(r->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
}

TEST(HttpAuthTest, BearerComesFromTheHeaderOrTheSessionCookie) {
  httplib::Request req;
  EXPECT_EQ(BearerOf(req), "");
  req.headers.emplace("Cookie", "a=b; mf_session=mfu1.x.y; c=d");
  EXPECT_EQ(BearerOf(req), "mfu1.x.y");
  req.headers.emplace("Authorization", "Bearer mfu1.h.z");
  EXPECT_EQ(BearerOf(req), "mfu1.h.z");
}

}  // namespace
}  // namespace musafarm::coordinator
