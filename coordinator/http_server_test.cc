#include "coordinator/http_server.h"

#include <atomic>

#include "coordinator/probes.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

HttpServerOptions At(const std::string& listen) {
  HttpServerOptions o;
  o.listen = listen;
  return o;
}

TEST(HttpServerTest, ProbesAnswerAndReadinessFollowsTheFlag) {
  std::atomic<bool> ready{false};
  HttpServer server(At("127.0.0.1:0"));
  AddProbeRoutes(server.routes(), &ready);
  absl::StatusOr<int> port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  httplib::Client client("127.0.0.1", *port);
  auto health = client.Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
  auto readyz = client.Get("/readyz");
  ASSERT_TRUE(readyz);
  EXPECT_EQ(readyz->status, 503);
  EXPECT_NE(readyz->body.find("recovering"), std::string::npos);
  ready = true;
  readyz = client.Get("/readyz");
  ASSERT_TRUE(readyz);
  EXPECT_EQ(readyz->status, 200);
  server.Stop();
}

TEST(HttpServerTest, BadAddressesAreRefusedSayingWhy) {
  HttpServer no_port(At("127.0.0.1"));
  absl::StatusOr<int> p = no_port.Start();
  EXPECT_TRUE(absl::IsInvalidArgument(p.status())) << p.status();
  EXPECT_NE(p.status().message().find("host:port"), std::string::npos);
  HttpServer bad_port(At("127.0.0.1:99999"));
  p = bad_port.Start();
  EXPECT_TRUE(absl::IsInvalidArgument(p.status())) << p.status();

  HttpServer first(At("127.0.0.1:0"));
  absl::StatusOr<int> taken = first.Start();
  ASSERT_TRUE(taken.ok());
  HttpServer second(At("127.0.0.1:" + std::to_string(*taken)));
  p = second.Start();
  EXPECT_TRUE(absl::IsUnavailable(p.status())) << p.status();
}

TEST(HttpServerTest, UnloadableTlsMaterialIsRefused) {
  HttpServerOptions o = At("127.0.0.1:0");
  o.cert_pem = "not a certificate";
  o.key_pem = "x";
  HttpServer server(o);
  absl::StatusOr<int> p = server.Start();
  EXPECT_TRUE(absl::IsInvalidArgument(p.status())) << p.status();
}

}  // namespace
}  // namespace musafarm::coordinator
