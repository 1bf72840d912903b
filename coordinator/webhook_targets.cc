#include "coordinator/webhook_targets.h"

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_cat.h"

namespace musafarm::coordinator {

absl::StatusOr<WebhookUrl> ParseWebhookUrl(absl::string_view url) {
  WebhookUrl out;
  absl::string_view rest = url;
  if (absl::ConsumePrefix(&rest, "https://")) {
    out.scheme = "https";
  } else if (absl::ConsumePrefix(&rest, "http://")) {
    out.scheme = "http";
  } else {
    return absl::InvalidArgumentError(
        "webhook: the URL must start with http:// or https://");
  }
  const size_t slash = rest.find('/');
  out.host = std::string(rest.substr(0, slash));
  out.path = slash == absl::string_view::npos ? "/" : std::string(rest.substr(slash));
  if (out.host.empty()) return absl::InvalidArgumentError("webhook: the URL names no host");
  if (absl::StrContains(out.host, "@")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "webhook to ", out.host.substr(out.host.find('@') + 1),
        ": credentials in the URL's host part are not supported; put them in its path"));
  }
  if (absl::StrContains(out.path, "#")) {
    return absl::InvalidArgumentError(
        absl::StrCat("webhook to ", out.host, ": the URL must not have a fragment (#)"));
  }
  for (char c : url) {
    if (static_cast<unsigned char>(c) <= ' ' || c == 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrCat("webhook to ", out.host, ": the URL holds a space or control character"));
    }
  }
  return out;
}

absl::Status CheckWebhookAllowed(absl::string_view url, const std::vector<std::string>& allow) {
  absl::StatusOr<WebhookUrl> parsed = ParseWebhookUrl(url);
  if (!parsed.ok()) return parsed.status();
  // Compared part by part, so "https://hooks.example.com" does not admit
  // "https://hooks.example.com.evil.net/".
  for (const std::string& prefix : allow) {
    absl::StatusOr<WebhookUrl> p = ParseWebhookUrl(prefix);
    if (p.ok() && p->scheme == parsed->scheme && absl::EqualsIgnoreCase(p->host, parsed->host) &&
        absl::StartsWith(parsed->path, p->path)) {
      return absl::OkStatus();
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "webhook to ", parsed->host, " is not allowed: ",
      allow.empty() ? "this coordinator allows no webhooks (an admin sets --webhook-allow PREFIX)"
                    : "no --webhook-allow prefix of the coordinator matches it"));
}

std::string RedactWebhookUrl(absl::string_view url) {
  absl::StatusOr<WebhookUrl> parsed = ParseWebhookUrl(url);
  if (!parsed.ok()) return "(invalid URL)";
  return absl::StrCat(parsed->scheme, "://", parsed->host, "/...");
}

}  // namespace musafarm::coordinator
