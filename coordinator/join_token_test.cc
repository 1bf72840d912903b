#include "coordinator/join_token.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;

const absl::Time kNow = absl::FromUnixSeconds(1'700'000'000);

TEST(JoinTokenTest, MadeTokenParsesAndItsSecretMatchesOnlyItsRow) {
  absl::StatusOr<NewJoinToken> t = MakeJoinToken(3, absl::Hours(1), "rack 4", kNow);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_THAT(t->text, MatchesRegex("mfj1\\.[0-9a-f]{8}\\.[A-Za-z0-9_-]{43}"));
  EXPECT_EQ(t->row.uses_left, 3);
  EXPECT_EQ(t->row.created_at, kNow);
  EXPECT_EQ(t->row.expire_time, kNow + absl::Hours(1));
  EXPECT_EQ(t->row.description, "rack 4");

  absl::StatusOr<ParsedJoinToken> parsed = ParseJoinToken(t->text);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->id, t->row.id);
  EXPECT_TRUE(JoinTokenSecretMatches(t->row, parsed->secret));

  // The row holds no trace of the secret.
  EXPECT_EQ(t->row.secret_hash.find(parsed->secret), std::string::npos);
  EXPECT_EQ(t->row.salt.find(parsed->secret), std::string::npos);

  absl::StatusOr<NewJoinToken> other = MakeJoinToken(1, absl::Hours(1), "", kNow);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(other->row.id, t->row.id);
  EXPECT_FALSE(JoinTokenSecretMatches(other->row, parsed->secret));
  EXPECT_FALSE(JoinTokenSecretMatches(t->row, ParseJoinToken(other->text)->secret));
}

TEST(JoinTokenTest, SameSecretHashesDifferentlyUnderAnotherSalt) {
  absl::StatusOr<NewJoinToken> t = MakeJoinToken(1, absl::Hours(1), "", kNow);
  ASSERT_TRUE(t.ok());
  JoinToken resalted = t->row;
  resalted.salt = std::string(resalted.salt.size(), '0');
  EXPECT_FALSE(JoinTokenSecretMatches(resalted, ParseJoinToken(t->text)->secret));
}

TEST(JoinTokenTest, MalformedTokensAreRefusedWithoutQuotingTheSecret) {
  const std::string secret(43, 'Q');
  for (const std::string& bad : std::vector<std::string>{
           "", "mfj1", "mfj2.0000beef." + secret, "mfj1.0000BEEF." + secret,
        "mfj1.beef." + secret, "mfj1.0000beef.", "mfj1.0000beef." + secret + "QQQQ",
        "mfj1.0000beef." + secret + ".x", std::string("mfj1.0000beef.!!!")}) {
    absl::StatusOr<ParsedJoinToken> p = ParseJoinToken(bad);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(p.status().message()), HasSubstr("malformed join token")) << bad;
    EXPECT_THAT(std::string(p.status().message()), Not(HasSubstr(secret))) << bad;
  }
}

TEST(JoinTokenTest, NeedsUsesAndATimeToLive) {
  EXPECT_EQ(MakeJoinToken(0, absl::Hours(1), "", kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeJoinToken(1, absl::ZeroDuration(), "", kNow).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace musafarm::coordinator
