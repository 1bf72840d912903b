#include "coordinator/enrollment.h"

#include <memory>
#include <string>
#include <vector>

#include "common/pki.h"
#include "coordinator/join_token.h"
#include "coordinator/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fakes/fake_clock.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// A farm CA, an in-memory store and a fake clock; tokens made as the host
// command makes them.
class EnrollmentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<pki::Ca> ca =
        pki::MakeCa("test farm CA", clock_.Now() - absl::Hours(1), clock_.Now() + absl::Hours(24 * 365));
    ASSERT_TRUE(ca.ok()) << ca.status();
    ca_ = *ca;
    absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(":memory:");
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
    EnrollmentOptions options;
    options.cert_lifetime = absl::Seconds(12);
    options.ca = ca_;
    options.trusted_pem = ca_.cert_pem;
    enrollment_ = std::make_unique<Enrollment>(store_.get(), &clock_, options);
    ASSERT_TRUE(enrollment_->Load().ok());
  }

  std::string NewToken(int64_t uses, absl::Duration ttl = absl::Hours(1)) {
    absl::StatusOr<NewJoinToken> t = MakeJoinToken(uses, ttl, "test", clock_.Now());
    EXPECT_TRUE(t.ok()) << t.status();
    EXPECT_TRUE(store_->InsertJoinToken(t->row).ok());
    return t->text;
  }

  v1::EnrollRequest Request(const std::string& token, const std::string& name) {
    absl::StatusOr<std::string> key = pki::GeneratePrivateKey();
    EXPECT_TRUE(key.ok());
    absl::StatusOr<std::string> csr = pki::MakeCsr(*key, "whatever-the-agent-asks");
    EXPECT_TRUE(csr.ok());
    v1::EnrollRequest r;
    r.set_token(token);
    r.set_name(name);
    r.set_csr_pem(*csr);
    return r;
  }

  v1::RenewCertificateRequest RenewRequest() {
    v1::RenewCertificateRequest r;
    r.set_csr_pem(Request("", "").csr_pem());
    return r;
  }

  testing::FakeClock clock_;
  pki::Ca ca_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Enrollment> enrollment_;
};

TEST_F(EnrollmentTest, EnrolSignsForTheRequestedNameAndRecordsIt) {
  absl::StatusOr<v1::EnrollResponse> r = enrollment_->Enroll(Request(NewToken(1), "builder-1"), "p");
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<pki::CertInfo> info =
      pki::VerifyClientCertificate(r->certificate_pem(), ca_.cert_pem, clock_.Now());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "builder-1");  // the name asked for, not the CSR's CN
  EXPECT_EQ(info->not_after, clock_.Now() + absl::Seconds(12));
  EXPECT_EQ(r->expire_time().seconds(), absl::ToUnixSeconds(info->not_after));
  EXPECT_EQ(r->ca_pem(), ca_.cert_pem);
  absl::StatusOr<std::vector<IssuedCertificate>> certs = store_->LoadCertificates("builder-1");
  ASSERT_TRUE(certs.ok());
  ASSERT_EQ(certs->size(), 1u);
  EXPECT_EQ((*certs)[0].serial_hex, info->serial_hex);
  EXPECT_EQ((*certs)[0].fingerprint, info->fingerprint);
}

TEST_F(EnrollmentTest, OneUseTokenWorksOnceNUseTokenNTimes) {
  const std::string once = NewToken(1);
  ASSERT_TRUE(enrollment_->Enroll(Request(once, "a1"), "p").ok());
  absl::StatusOr<v1::EnrollResponse> again = enrollment_->Enroll(Request(once, "a2"), "p");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(again.status().message()), HasSubstr("is used up"));

  const std::string thrice = NewToken(3);
  for (const char* name : {"b1", "b2", "b3"}) {
    EXPECT_TRUE(enrollment_->Enroll(Request(thrice, name), "p").ok()) << name;
  }
  EXPECT_EQ(enrollment_->Enroll(Request(thrice, "b4"), "p").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(EnrollmentTest, ExpiredUnknownAndForgedTokensAreRefused) {
  const std::string token = NewToken(5, absl::Minutes(10));
  clock_.Advance(absl::Minutes(10));
  absl::StatusOr<v1::EnrollResponse> r = enrollment_->Enroll(Request(token, "a"), "p");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("expired at"));

  // The right id with another secret: the stored hash does not match.
  const std::string good = NewToken(5);
  absl::StatusOr<NewJoinToken> other = MakeJoinToken(1, absl::Hours(1), "", clock_.Now());
  ASSERT_TRUE(other.ok());
  const std::string forged =
      good.substr(0, good.rfind('.')) + other->text.substr(other->text.rfind('.'));
  r = enrollment_->Enroll(Request(forged, "a"), "p");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("wrong secret"));
  EXPECT_THAT(std::string(r.status().message()), Not(HasSubstr(forged.substr(forged.rfind('.')))));

  r = enrollment_->Enroll(Request(other->text, "a"), "p");  // never stored
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("unknown join token"));

  r = enrollment_->Enroll(Request("not-a-token", "a"), "p");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("malformed join token"));

  // None of it cost the good token a use.
  EXPECT_EQ(store_->LoadJoinToken(good.substr(5, 8))->uses_left, 5);
}

TEST_F(EnrollmentTest, BadNameOrCsrIsRefusedWithoutTakingAUse) {
  const std::string token = NewToken(1);
  for (const char* bad : {"", "-lead", "has space", "a/b"}) {
    EXPECT_EQ(enrollment_->Enroll(Request(token, bad), "p").status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  v1::EnrollRequest req = Request(token, "ok");
  req.set_csr_pem("not a csr");
  EXPECT_EQ(enrollment_->Enroll(req, "p").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(enrollment_->Enroll(Request(token, "ok"), "p").ok());
}

TEST_F(EnrollmentTest, RenewIssuesANewCertificateForTheCallersName) {
  absl::StatusOr<v1::EnrollResponse> first = enrollment_->Enroll(Request(NewToken(1), "a"), "p");
  ASSERT_TRUE(first.ok());
  clock_.Advance(absl::Seconds(8));
  absl::StatusOr<v1::RenewCertificateResponse> renewed =
      enrollment_->Renew(first->certificate_pem(), RenewRequest(), "p");
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  absl::StatusOr<pki::CertInfo> info = pki::ParseCertificate(renewed->certificate_pem());
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->common_name, "a");
  EXPECT_EQ(info->not_after, clock_.Now() + absl::Seconds(12));
  EXPECT_EQ(store_->LoadCertificates("a")->size(), 2u);

  // The old certificate, once expired, renews nothing: the agent must enrol again.
  clock_.Advance(absl::Seconds(5));
  absl::StatusOr<v1::RenewCertificateResponse> late =
      enrollment_->Renew(first->certificate_pem(), RenewRequest(), "p");
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(late.status().message()), HasSubstr("expired"));
  // No certificate at all: refused too.
  EXPECT_EQ(enrollment_->Renew("", RenewRequest(), "p").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(EnrollmentTest, RenewRefusesACertificateFromAnotherCa) {
  absl::StatusOr<pki::Ca> other = pki::MakeCa("other CA", clock_.Now() - absl::Hours(1),
                                              clock_.Now() + absl::Hours(1));
  ASSERT_TRUE(other.ok());
  EnrollmentOptions o;
  o.ca = *other;
  o.trusted_pem = other->cert_pem;
  Enrollment foreign(store_.get(), &clock_, o);
  absl::StatusOr<v1::EnrollResponse> cert = foreign.Enroll(Request(NewToken(1), "a"), "p");
  ASSERT_TRUE(cert.ok());
  absl::StatusOr<v1::RenewCertificateResponse> r =
      enrollment_->Renew(cert->certificate_pem(), RenewRequest(), "p");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("not signed by this farm's CA"));
}

TEST_F(EnrollmentTest, RevokedNameIsRefusedRenewalAndEnrolmentAndSurvivesARestart) {
  absl::StatusOr<v1::EnrollResponse> cert = enrollment_->Enroll(Request(NewToken(2), "a"), "p");
  ASSERT_TRUE(cert.ok());
  absl::StatusOr<Revocation> r = enrollment_->Revoke("a", /*known_agent=*/false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->serials.size(), 1u);
  EXPECT_TRUE(enrollment_->IsRevoked("a"));
  EXPECT_THAT(std::string(enrollment_->RevokedError("a").message()),
              HasSubstr("agent 'a' was revoked at"));

  absl::StatusOr<v1::RenewCertificateResponse> renew =
      enrollment_->Renew(cert->certificate_pem(), RenewRequest(), "p");
  EXPECT_EQ(renew.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(renew.status().message()), HasSubstr("agent 'a' was revoked"));
  absl::StatusOr<v1::EnrollResponse> again = enrollment_->Enroll(Request(NewToken(1), "a"), "p");
  EXPECT_EQ(again.status().code(), absl::StatusCode::kPermissionDenied);

  Enrollment restarted(store_.get(), &clock_, EnrollmentOptions{});
  ASSERT_TRUE(restarted.Load().ok());
  EXPECT_TRUE(restarted.IsRevoked("a"));
  EXPECT_FALSE(restarted.IsRevoked("b"));
}

TEST_F(EnrollmentTest, RevokingAnUnknownNameIsNotFoundUnlessAConnectedAgentHasIt) {
  EXPECT_EQ(enrollment_->Revoke("typo", false).status().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(enrollment_->IsRevoked("typo"));
  EXPECT_TRUE(enrollment_->Revoke("seen-insecure", /*known_agent=*/true).ok());
  EXPECT_TRUE(enrollment_->IsRevoked("seen-insecure"));
}

TEST_F(EnrollmentTest, WithoutACaKeyEnrolAndRenewSaySo) {
  Enrollment own_ca(store_.get(), &clock_, EnrollmentOptions{});
  absl::StatusOr<v1::EnrollResponse> r = own_ca.Enroll(Request(NewToken(1), "a"), "p");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("no CA key"));
  EXPECT_EQ(own_ca.Renew("x", RenewRequest(), "p").status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(AgentNameTest, Rules) {
  for (const std::string& ok :
       std::vector<std::string>{"a", "builder-1", "gpu_box.lab", "9x", std::string(63, 'a')}) {
    EXPECT_TRUE(ValidateAgentName(ok).ok()) << ok;
  }
  for (const std::string& bad : std::vector<std::string>{"", ".hidden", "_x", "a b", "a/b", "é",
                                                         std::string(64, 'a')}) {
    EXPECT_EQ(ValidateAgentName(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace musafarm::coordinator
