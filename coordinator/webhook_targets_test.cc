#include "coordinator/webhook_targets.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(WebhookTargetsTest, AllowedUrlsFallUnderAPrefixPartByPart) {
  const std::vector<std::string> allow = {"https://hooks.slack.com/services/",
                                          "http://127.0.0.1:8080/"};
  EXPECT_TRUE(CheckWebhookAllowed("https://hooks.slack.com/services/T0/B0/xyz", allow).ok());
  EXPECT_TRUE(CheckWebhookAllowed("http://127.0.0.1:8080/hook", allow).ok());
  EXPECT_TRUE(CheckWebhookAllowed("https://HOOKS.slack.com/services/x", allow).ok());

  for (const char* refused :
       {"https://hooks.slack.com.evil.net/services/x", "http://hooks.slack.com/services/x",
        "https://hooks.slack.com/other", "http://127.0.0.1:8081/hook"}) {
    absl::Status s = CheckWebhookAllowed(refused, allow);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << refused;
    EXPECT_THAT(s.message(), HasSubstr("is not allowed")) << refused;
  }
  // The message names the host, never the path (often a token).
  absl::Status s = CheckWebhookAllowed("https://evil.example/secret-token-123", allow);
  EXPECT_THAT(s.message(), HasSubstr("evil.example"));
  EXPECT_THAT(s.message(), Not(HasSubstr("secret-token-123")));
  // No allowlist: nothing is allowed, and the message says how to allow.
  EXPECT_THAT(CheckWebhookAllowed("https://a.example/", {}).message(), HasSubstr("--webhook-allow"));
}

TEST(WebhookTargetsTest, MalformedUrlsAreRefused) {
  for (const char* bad : {"ftp://x/", "https:///path", "https://user:pw@host/x", "https://h/a#b",
                          "https://h/a b"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ParseWebhookUrl(bad).status())) << bad;
  }
  absl::StatusOr<WebhookUrl> u = ParseWebhookUrl("https://h.example:8443");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->host, "h.example:8443");
  EXPECT_EQ(u->path, "/");
}

TEST(WebhookTargetsTest, RedactionKeepsSchemeAndHostOnly) {
  EXPECT_EQ(RedactWebhookUrl("https://hooks.slack.com/services/T0/B0/xyz"),
            "https://hooks.slack.com/...");
  EXPECT_EQ(RedactWebhookUrl("nonsense"), "(invalid URL)");
}

}  // namespace
}  // namespace musafarm::coordinator
