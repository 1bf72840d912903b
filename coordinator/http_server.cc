#include "coordinator/http_server.h"

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <chrono>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace musafarm::coordinator {
namespace {

// httplib's SSLServer takes an X509 and a key, not PEM text; it copies both
// into its SSL_CTX, so these are freed on return.
std::unique_ptr<httplib::Server> MakeTlsServer(const std::string& cert_pem,
                                               const std::string& key_pem) {
  BIO* cbio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  X509* cert = PEM_read_bio_X509(cbio, nullptr, nullptr, nullptr);
  BIO_free(cbio);
  BIO* kbio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(kbio, nullptr, nullptr, nullptr);
  BIO_free(kbio);
  std::unique_ptr<httplib::Server> server;
  if (cert != nullptr && key != nullptr) {
    auto ssl = std::make_unique<httplib::SSLServer>(cert, key);
    if (ssl->is_valid()) server = std::move(ssl);
  }
  X509_free(cert);
  EVP_PKEY_free(key);
  return server;
}

}  // namespace

absl::StatusOr<std::pair<std::string, int>> SplitHostPort(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--http-listen '", listen, "': expected host:port, e.g. 127.0.0.1:8080"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  int port = -1;
  if (!absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--http-listen '", listen, "': port '", listen.substr(colon + 1), "' is not 0-65535"));
  }
  return std::make_pair(host, port);
}

HttpServer::HttpServer(HttpServerOptions options) : options_(std::move(options)) {
  tls_ = !options_.cert_pem.empty();
  if (tls_) {
    server_ = MakeTlsServer(options_.cert_pem, options_.key_pem);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  if (server_ == nullptr) return;  // Start() says why
  // httplib sets SO_REUSEPORT by default, so a second coordinator on the same
  // port would bind it too and answer half the probes: SO_REUSEADDR only (a
  // restart may rebind while old connections sit in TIME_WAIT).
  server_->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  const int threads = options_.threads;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  // An idle keep-alive connection holds a pool thread while it waits for its
  // next request: keep that wait short so idle browsers cannot starve the pool.
  server_->set_keep_alive_timeout(2);
  server_->set_read_timeout(10, 0);
  server_->set_payload_max_length(64 << 10);  // forms only; nothing large is uploaded
}

HttpServer::~HttpServer() { Stop(); }

absl::StatusOr<int> HttpServer::Start() {
  if (server_ == nullptr) {
    return absl::InvalidArgumentError(
        "HTTP port: the TLS certificate or key does not load (or pass --insecure)");
  }
  absl::StatusOr<std::pair<std::string, int>> hp = SplitHostPort(options_.listen);
  if (!hp.ok()) return hp.status();
  int port = hp->second;
  if (port == 0) {
    port = server_->bind_to_any_port(hp->first);
  } else if (!server_->bind_to_port(hp->first, port)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen for HTTP on '", options_.listen, "' (address in use?)"));
  }
  started_ = true;
  listener_ = std::thread([this] { server_->listen_after_bind(); });
  // httplib's stop() does nothing until the listener thread has marked the
  // server running, so a Stop() right after Start() would leave it listening
  // forever: return only once it runs (a few microseconds).
  while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::microseconds(100));
  return port;
}

void HttpServer::Stop() {
  if (!started_.exchange(false)) return;
  server_->stop();
  if (listener_.joinable()) listener_.join();
}

}  // namespace musafarm::coordinator
