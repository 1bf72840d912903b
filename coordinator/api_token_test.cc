#include "coordinator/api_token.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

TEST(ApiTokenTest, MadeTokenParsesAndMatchesOnlyItsSecret) {
  absl::StatusOr<NewApiToken> t = MakeApiToken("alice", "submitter", absl::Hours(24), "root", kNow);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->text, ::testing::StartsWith("mfu1."));
  EXPECT_EQ(t->row.user, "alice");
  EXPECT_EQ(t->row.role, "submitter");
  EXPECT_EQ(t->row.created_by, "root");
  EXPECT_EQ(t->row.created_at, kNow);
  EXPECT_EQ(t->row.expire_time, kNow + absl::Hours(24));
  EXPECT_FALSE(t->row.revoked());
  EXPECT_TRUE(IsApiTokenId(t->row.id));

  absl::StatusOr<ParsedApiToken> p = ParseApiToken(t->text);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->id, t->row.id);
  EXPECT_TRUE(ApiTokenSecretMatches(t->row, p->secret));
  // The row holds neither the secret nor the token.
  EXPECT_THAT(t->row.secret_hash, Not(HasSubstr(p->secret)));
  EXPECT_NE(t->row.secret_hash, p->secret);
  std::string wrong = p->secret;
  wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(ApiTokenSecretMatches(t->row, wrong));

  // Salted: another token's row does not accept this secret.
  absl::StatusOr<NewApiToken> other = MakeApiToken("alice", "submitter", absl::Hours(24), "root",
                                                   kNow);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->row.id, t->row.id);
  EXPECT_NE(other->row.salt, t->row.salt);
  EXPECT_FALSE(ApiTokenSecretMatches(other->row, p->secret));
}

TEST(ApiTokenTest, InfiniteTtlNeverExpiresAndBadTtlIsRefused) {
  absl::StatusOr<NewApiToken> t =
      MakeApiToken("ci-bot", "viewer", absl::InfiniteDuration(), "host", kNow);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->row.expire_time, absl::InfiniteFuture());
  EXPECT_EQ(MakeApiToken("a", "viewer", absl::ZeroDuration(), "host", kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ApiTokenTest, BadUserNamesAreRefusedSayingWhy) {
  EXPECT_TRUE(ValidateUserName("alice.smith@example-corp_1").ok());
  EXPECT_THAT(std::string(ValidateUserName("").message()), HasSubstr("empty"));
  EXPECT_THAT(std::string(ValidateUserName(std::string(65, 'a')).message()),
              HasSubstr("limit is 64"));
  absl::Status s = ValidateUserName("bob smith");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("character 4"));
  EXPECT_EQ(MakeApiToken("a b", "viewer", absl::Hours(1), "host", kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ApiTokenTest, MalformedTokensAreRefusedWithoutQuotingTheSecret) {
  const std::string secret = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2U";
  for (const std::string& bad :
       {std::string("mfu1.0123456789abcdef"), "mfj1.0123456789abcdef." + secret,
        "mfu1.0123.456." + secret, "mfu1.0123456789ABCDEF." + secret,
        std::string("mfu1.0123456789abcdef.") + "!!notbase64!!", std::string("mfu1.0123456789abcdef.c2hvcnQ")}) {
    absl::StatusOr<ParsedApiToken> p = ParseApiToken(bad);
    ASSERT_FALSE(p.ok()) << bad;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("malformed API token"));
    EXPECT_THAT(std::string(p.status().message()), Not(HasSubstr(secret)));
    EXPECT_THAT(std::string(p.status().message()), Not(HasSubstr("notbase64")));
  }
}

}  // namespace
}  // namespace musafarm::coordinator
