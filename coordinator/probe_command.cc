#include "coordinator/probe_command.h"

#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "common/address.h"
#include "common/bounded_text.h"
#include "httplib.h"

namespace musafarm::coordinator {
namespace {

struct ParsedUrl {
  bool https = false;
  std::string host_port;  // as written: "127.0.0.1:8080", "[::1]:8443"
  std::string path;
};

// Only what a probe needs: a scheme, an explicit port (no guessing 80/443,
// which a coordinator never serves on by default) and a path.
bool ParseUrl(absl::string_view url, ParsedUrl* parsed, std::string* why) {
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "http://")) {
    parsed->https = false;
  } else if (absl::ConsumePrefix(&rest, "https://")) {
    parsed->https = true;
  } else {
    *why = "expected http://HOST:PORT[/PATH] or https://HOST:PORT[/PATH]";
    return false;
  }
  const size_t slash = rest.find('/');
  parsed->host_port = std::string(rest.substr(0, slash));
  parsed->path = slash == absl::string_view::npos ? "/readyz" : std::string(rest.substr(slash));
  if (absl::StartsWith(parsed->host_port, "unix:") || absl::StartsWith(parsed->host_port, "dns:")) {
    *why = "expected HOST:PORT after the scheme";
    return false;
  }
  if (absl::Status s = ValidateAddress("--url", parsed->host_port); !s.ok()) {
    *why = std::string(s.message());
    return false;
  }
  return true;
}

std::string FirstLine(const std::string& body) {
  std::string line = body.substr(0, body.find('\n'));
  if (line.size() > 200) line.resize(200);
  return Printable(line);
}

}  // namespace

int RunProbe(const ProbeOptions& options, std::ostream& out, std::ostream& err) {
  ParsedUrl url;
  std::string why;
  if (!ParseUrl(options.url, &url, &why)) {
    err << "probe: --url " << Printable(options.url) << ": " << why << "\n";
    return 2;
  }
  const std::string base = absl::StrCat(url.https ? "https://" : "http://", url.host_port);
  httplib::Client client(base);
  if (!client.is_valid()) {
    err << "probe: --url " << Printable(options.url) << ": not a URL httplib can reach\n";
    return 2;
  }
  const int64_t timeout_us = absl::ToInt64Microseconds(options.timeout);
  client.set_connection_timeout(timeout_us / 1000000, timeout_us % 1000000);
  client.set_read_timeout(timeout_us / 1000000, timeout_us % 1000000);
  client.set_write_timeout(timeout_us / 1000000, timeout_us % 1000000);
  if (url.https) {
    if (options.ca_file.empty()) {
      client.enable_server_certificate_verification(false);
    } else {
      FILE* f = std::fopen(options.ca_file.c_str(), "r");
      if (f == nullptr) {
        err << "probe: --ca " << Printable(options.ca_file) << ": cannot be read\n";
        return 2;
      }
      std::fclose(f);
      client.set_ca_cert_path(options.ca_file.c_str());
      client.enable_server_certificate_verification(true);
    }
  }
  httplib::Result res = client.Get(url.path.c_str());
  if (!res) {
    err << "probe: " << Printable(options.url) << ": no answer ("
        << httplib::to_string(res.error()) << ")\n";
    return 3;
  }
  if (res->status != 200) {
    err << "probe: " << Printable(options.url) << ": HTTP " << res->status << ": "
        << FirstLine(res->body) << "\n";
    return 1;
  }
  out << "probe: " << Printable(options.url) << ": HTTP 200: " << FirstLine(res->body) << "\n";
  return 0;
}

}  // namespace musafarm::coordinator
