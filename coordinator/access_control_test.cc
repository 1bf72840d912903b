#include "coordinator/access_control.h"

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "coordinator/api_token.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

constexpr Action kAllActions[] = {
    Action::kRead,        Action::kSubmit,       Action::kCancelJob,
    Action::kRerunJob,    Action::kDrainAgent,   Action::kRevokeAgent,
    Action::kManageTokens, Action::kReadAudit,   Action::kManageSchedules,
};

Principal Who(const std::string& user, Role role) {
  Principal p;
  p.user = user;
  p.role = role;
  p.token_id = "0123456789abcdef";
  return p;
}

TEST(RoleTest, NamesRoundTrip) {
  for (Role r : {Role::kViewer, Role::kSubmitter, Role::kAdmin}) {
    absl::StatusOr<Role> parsed = ParseRole(RoleName(r));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, r);
  }
  absl::StatusOr<Role> bad = ParseRole("root");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.status().message()),
              AllOf(HasSubstr("'root'"), HasSubstr("viewer, submitter and admin")));
}

// Every role against every action: the table in docs/security.md.
TEST(AuthorizeTest, EveryRoleAgainstEveryAction) {
  AccessControl access(nullptr, /*insecure=*/false);
  for (Action a : kAllActions) {
    SCOPED_TRACE(std::string(ActionDescription(a)));
    const bool job_action = a == Action::kCancelJob || a == Action::kRerunJob;
    const std::string owner = job_action ? "alice" : "";
    // Admins do everything, even to others' jobs.
    EXPECT_TRUE(access.Authorize(Who("root", Role::kAdmin), a, owner).ok());
    // Viewers only read, even their own jobs they cannot cancel.
    absl::Status viewer = access.Authorize(Who("alice", Role::kViewer), a, owner);
    EXPECT_EQ(viewer.ok(), a == Action::kRead) << viewer;
    // Submitters read, submit and act on their own jobs.
    absl::Status own = access.Authorize(Who("alice", Role::kSubmitter), a, owner);
    EXPECT_EQ(own.ok(), a == Action::kRead || a == Action::kSubmit || job_action) << own;
    absl::Status others =
        access.Authorize(Who("bob", Role::kSubmitter), a, job_action ? "alice" : "");
    EXPECT_EQ(others.ok(), a == Action::kRead || a == Action::kSubmit) << others;
    if (!others.ok()) {
      EXPECT_EQ(others.code(), absl::StatusCode::kPermissionDenied);
    }
  }
}

TEST(AuthorizeTest, DenialNamesUserRoleAndWhatTheRoleLacks) {
  AccessControl access(nullptr, /*insecure=*/false);
  absl::Status s = access.Authorize(Who("carol", Role::kViewer), Action::kSubmit);
  EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr("user carol"), HasSubstr("role viewer"), HasSubstr("submit jobs")));
  s = access.Authorize(Who("bob", Role::kSubmitter), Action::kDrainAgent);
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr("user bob"), HasSubstr("role submitter"),
                    HasSubstr("drain or undrain agents")));
  s = access.Authorize(Who("bob", Role::kSubmitter), Action::kCancelJob, "alice");
  EXPECT_THAT(std::string(s.message()),
              AllOf(HasSubstr("user bob"), HasSubstr("submitted by alice")));
  // A job with no recorded submitter (made before users existed) is no one's own.
  EXPECT_FALSE(access.Authorize(Who("bob", Role::kSubmitter), Action::kCancelJob, "").ok());
}

class AuthenticateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(":memory:");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = store->get();
    access_ = std::make_unique<AccessControl>(*std::move(store), /*insecure=*/false);
  }

  // Stores a new token and returns its text.
  std::string Make(const std::string& user, const std::string& role, absl::Duration ttl) {
    absl::StatusOr<NewApiToken> t = MakeApiToken(user, role, ttl, "root", kNow);
    EXPECT_TRUE(t.ok()) << t.status();
    AuditEntry audit;
    audit.action = "token.create";
    EXPECT_TRUE(store_->InsertApiToken(t->row, audit).ok());
    ids_.push_back(t->row.id);
    return t->text;
  }

  Store* store_ = nullptr;  // owned by access_; used by the test thread only
  std::unique_ptr<AccessControl> access_;
  std::vector<std::string> ids_;
};

TEST_F(AuthenticateTest, ValidTokenGivesItsUserAndRole) {
  const std::string token = Make("alice", "submitter", absl::Hours(1));
  absl::StatusOr<Principal> p = access_->Authenticate(token, "mallory", kNow);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->user, "alice");  // never the claimed OS user
  EXPECT_EQ(p->role, Role::kSubmitter);
  EXPECT_EQ(p->token_id, ids_[0]);
  EXPECT_FALSE(p->insecure);
}

TEST_F(AuthenticateTest, NoTokenOverTlsIsRefusedSayingWhatToDo) {
  absl::StatusOr<Principal> p = access_->Authenticate("", "alice", kNow);
  EXPECT_EQ(p.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(p.status().message()),
              AllOf(HasSubstr("no API token"), HasSubstr("MUSAFARM_TOKEN"),
                    HasSubstr("musafarm token create")));
}

TEST_F(AuthenticateTest, UnknownWrongExpiredRevokedAndMalformedAreRefusedWithoutEchoingIt) {
  const std::string good = Make("alice", "admin", absl::Hours(1));
  const std::string expiring = Make("bob", "viewer", absl::Minutes(5));
  const std::string revoked = Make("carol", "viewer", absl::Hours(1));
  AuditEntry audit;
  ASSERT_TRUE(store_->RevokeApiToken(ids_[2], kNow, audit).ok());
  std::string wrong_secret = good;
  wrong_secret.back() = wrong_secret.back() == 'A' ? 'B' : 'A';
  const std::string unknown = "mfu1.ffffffffffffffff." + good.substr(good.rfind('.') + 1);

  const std::vector<std::tuple<std::string, absl::Time, std::string>> cases = {
      {wrong_secret, kNow, "not valid here"},
      {unknown, kNow, "not valid here"},
      {expiring, kNow + absl::Minutes(5), "expired at"},
      {revoked, kNow, "was revoked at"},
      {"Basic dXNlcjpwYXNz", kNow, "malformed API token"},
  };
  for (const auto& [token, at, why] : cases) {
    absl::StatusOr<Principal> p = access_->Authenticate(token, "", at);
    ASSERT_FALSE(p.ok()) << why;
    EXPECT_EQ(p.status().code(), absl::StatusCode::kUnauthenticated) << why;
    const std::string msg(p.status().message());
    EXPECT_THAT(msg, HasSubstr(why));
    EXPECT_THAT(msg, HasSubstr("MUSAFARM_TOKEN"));
    EXPECT_THAT(msg, Not(HasSubstr(token.substr(token.rfind('.') + 1))));
  }
  // Just before its expiry the token still works; the good one is unaffected.
  EXPECT_TRUE(access_->Authenticate(expiring, "", kNow + absl::Minutes(5) - absl::Seconds(1)).ok());
  EXPECT_TRUE(access_->Authenticate(good, "", kNow).ok());
}

TEST_F(AuthenticateTest, RevocationCountsAtTheNextCall) {
  const std::string token = Make("alice", "admin", absl::Hours(1));
  ASSERT_TRUE(access_->Authenticate(token, "", kNow).ok());
  AuditEntry audit;
  ASSERT_TRUE(store_->RevokeApiToken(ids_[0], kNow, audit).ok());
  EXPECT_EQ(access_->Authenticate(token, "", kNow).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AuthenticateInsecureTest, WithoutATokenTheClaimedOsUserIsAnInsecureAdmin) {
  AccessControl access(nullptr, /*insecure=*/true);
  absl::StatusOr<Principal> p = access.Authenticate("", "dev", kNow);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->user, "dev");
  EXPECT_EQ(p->role, Role::kAdmin);
  EXPECT_TRUE(p->insecure);
  EXPECT_TRUE(p->token_id.empty());
  // A token, when given, is checked as over TLS: here no store knows it.
  absl::StatusOr<NewApiToken> t = MakeApiToken("dev", "admin", absl::Hours(1), "root", kNow);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(access.Authenticate(t->text, "dev", kNow).status().code(),
            absl::StatusCode::kUnauthenticated);
}

}  // namespace
}  // namespace musafarm::coordinator
