#pragma once

// Webhook URLs (issue 14, item 2): which ones a submitter may name, and how
// they are shown. A webhook URL is often a credential (Slack's and Feishu's
// carry their token in the path), so it is kept sealed and shown redacted.

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm::coordinator {

struct WebhookUrl {
  std::string scheme;  // "http" or "https"
  std::string host;    // as written, with the port if one was given
  std::string path;    // from the first '/' on, query included; "/" when none
};

// INVALID_ARGUMENT unless `url` is http(s)://HOST[:PORT][/PATH] without user
// info or a fragment.
absl::StatusOr<WebhookUrl> ParseWebhookUrl(absl::string_view url);

// OK when `url` falls under one of `allow` (the coordinator's --webhook-allow
// prefixes: same scheme, same host and port, path starting with the prefix's); INVALID_ARGUMENT naming the URL's host otherwise (never the whole
// URL: its path may be a token), and when there is no allowlist at all.
absl::Status CheckWebhookAllowed(absl::string_view url, const std::vector<std::string>& allow);

// "https://hooks.slack.com/..." : scheme and host only.
std::string RedactWebhookUrl(absl::string_view url);

}  // namespace musafarm::coordinator
