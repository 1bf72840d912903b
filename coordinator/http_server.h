#pragma once

// The coordinator's HTTP port (--http-listen): probes, /metrics and the
// dashboard. cpp-httplib serves it from a fixed pool of threads (no thread per
// connection); handlers that need farm state go through the core's UserApi on
// the core loop, never touching core state from a pool thread.

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "httplib.h"

namespace musafarm::coordinator {

struct HttpServerOptions {
  std::string listen;    // host:port; port 0 picks a free one
  std::string cert_pem;  // TLS with this certificate chain and key; both empty: plaintext
  std::string key_pem;
  // Pool threads. Long-lived responses (server-sent event streams) each hold
  // one for their lifetime, so the dashboard caps them below this (see
  // Dashboard's max_streams) and the rest answer ordinary requests.
  int threads = 16;
};

// Binds, serves on its own listener thread plus the pool, and stops. Routes are
// registered on routes() before Start(). Thread-safe after Start() as httplib
// is; Stop() waits for in-flight handlers.
class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  httplib::Server& routes() { return *server_; }
  bool tls() const { return tls_; }

  // Binds `listen` and starts serving. Returns the bound port. Unavailable when
  // the address cannot be bound, InvalidArgument for a malformed address or
  // unusable TLS material.
  absl::StatusOr<int> Start();
  void Stop();

 private:
  const HttpServerOptions options_;
  bool tls_ = false;
  std::unique_ptr<httplib::Server> server_;
  std::thread listener_;
  std::atomic<bool> started_{false};
};

// Splits "host:port" (IPv6 as "[::1]:port"). InvalidArgument saying what is wrong.
absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& listen);

}  // namespace musafarm::coordinator
