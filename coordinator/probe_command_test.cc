#include "coordinator/probe_command.h"

#include <atomic>
#include <sstream>
#include <string>

#include "coordinator/http_server.h"
#include "coordinator/probes.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

struct Probed {
  int rc = -1;
  std::string out, err;
};

Probed Probe(const std::string& url) {
  ProbeOptions o;
  o.url = url;
  o.timeout = absl::Seconds(10);
  std::ostringstream out, err;
  Probed p;
  p.rc = RunProbe(o, out, err);
  p.out = out.str();
  p.err = err.str();
  return p;
}

TEST(ProbeCommandTest, ExitsZeroOnlyOnceTheCoordinatorIsReady) {
  std::atomic<bool> ready{false};
  HttpServerOptions options;
  options.listen = "127.0.0.1:0";
  HttpServer server(options);
  AddProbeRoutes(server.routes(), &ready);
  absl::StatusOr<int> port = server.Start();
  ASSERT_TRUE(port.ok()) << port.status();
  const std::string base = "http://127.0.0.1:" + std::to_string(*port);

  Probed recovering = Probe(base);  // the path defaults to /readyz
  EXPECT_EQ(recovering.rc, 1);
  EXPECT_NE(recovering.err.find("HTTP 503: recovering"), std::string::npos) << recovering.err;

  Probed healthz = Probe(base + "/healthz");
  EXPECT_EQ(healthz.rc, 0) << healthz.err;

  ready = true;
  Probed now_ready = Probe(base + "/readyz");
  EXPECT_EQ(now_ready.rc, 0) << now_ready.err;
  EXPECT_NE(now_ready.out.find("HTTP 200: ready"), std::string::npos) << now_ready.out;

  Probed missing = Probe(base + "/nothing-here");
  EXPECT_EQ(missing.rc, 1);
  EXPECT_NE(missing.err.find("HTTP 404"), std::string::npos) << missing.err;
  server.Stop();

  Probed gone = Probe(base);
  EXPECT_EQ(gone.rc, 3);
  EXPECT_NE(gone.err.find("no answer"), std::string::npos) << gone.err;
}

TEST(ProbeCommandTest, MalformedUrlsExitTwoSayingWhy) {
  for (const char* url : {"127.0.0.1:8080/readyz", "ftp://127.0.0.1:8080/", "http://127.0.0.1/readyz",
                          "http://127.0.0.1:99999/readyz", "http://unix:/tmp/s", ""}) {
    Probed p = Probe(url);
    EXPECT_EQ(p.rc, 2) << url;
    EXPECT_NE(p.err.find("--url"), std::string::npos) << url << ": " << p.err;
  }
  ProbeOptions o;
  o.url = "https://127.0.0.1:1/readyz";
  o.ca_file = "/nonexistent/ca.crt";
  std::ostringstream out, err;
  EXPECT_EQ(RunProbe(o, out, err), 2);
  EXPECT_NE(err.str().find("--ca /nonexistent/ca.crt"), std::string::npos) << err.str();
}

}  // namespace
}  // namespace musafarm::coordinator
