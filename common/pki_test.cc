#include "common/pki.h"

#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "gtest/gtest.h"

namespace musafarm::pki {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::StartsWith;

// Fixed instants: verification takes `now`, so nothing here reads the clock.
const absl::Time kT0 = absl::FromCivil(absl::CivilSecond(2026, 1, 1, 0, 0, 0), absl::UTCTimeZone());
const absl::Time kT1 = kT0 + absl::Hours(24 * 30);  // agent certificates end here
const absl::Time kCaEnd = kT0 + absl::Hours(24 * 3650);

Ca MustMakeCa(const std::string& name, absl::Time end = kCaEnd) {
  absl::StatusOr<Ca> ca = MakeCa(name, kT0 - absl::Hours(1), end);
  EXPECT_TRUE(ca.ok()) << ca.status();
  return ca.ok() ? *ca : Ca{};
}

struct Issued {
  std::string key_pem;
  std::string cert_pem;
};

IssueOptions ClientOptions(const std::string& name) {
  IssueOptions o;
  o.common_name = name;
  o.client = true;
  o.not_before = kT0;
  o.not_after = kT1;
  return o;
}

Issued MustIssue(const Ca& ca, const IssueOptions& options) {
  absl::StatusOr<std::string> key = GeneratePrivateKey();
  EXPECT_TRUE(key.ok()) << key.status();
  absl::StatusOr<std::string> csr = MakeCsr(*key, options.common_name);
  EXPECT_TRUE(csr.ok()) << csr.status();
  absl::StatusOr<std::string> cert = SignCsr(ca, *csr, options);
  EXPECT_TRUE(cert.ok()) << cert.status();
  return {*key, cert.ok() ? *cert : ""};
}

// PEM <-> DER, so tests can alter bytes the way an attacker would.
std::string PemToDer(const std::string& pem) {
  std::string b64;
  for (absl::string_view line : absl::StrSplit(pem, '\n')) {
    if (!line.empty() && !absl::StartsWith(line, "-----")) absl::StrAppend(&b64, line);
  }
  std::string der;
  EXPECT_TRUE(absl::Base64Unescape(b64, &der));
  return der;
}
std::string DerToPem(const std::string& der, const std::string& label) {
  std::string b64 = absl::Base64Escape(der);
  std::string pem = absl::StrCat("-----BEGIN ", label, "-----\n");
  for (size_t i = 0; i < b64.size(); i += 64) absl::StrAppend(&pem, b64.substr(i, 64), "\n");
  absl::StrAppend(&pem, "-----END ", label, "-----\n");
  return pem;
}

// A CSR for a key OpenSSL makes as `gen` says (weak keys are refused by SignCsr).
std::string CsrWithKey(EVP_PKEY* key, const std::string& cn) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  absl::StatusOr<std::string> csr = MakeCsr(std::string(data, static_cast<size_t>(n)), cn);
  EXPECT_TRUE(csr.ok()) << csr.status();
  return csr.ok() ? *csr : "";
}

TEST(PkiTest, KeyAndCsrRoundTrip) {
  absl::StatusOr<std::string> key = GeneratePrivateKey();
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_THAT(*key, StartsWith("-----BEGIN PRIVATE KEY-----"));  // PKCS#8, unencrypted
  absl::StatusOr<std::string> csr = MakeCsr(*key, "agent-1");
  ASSERT_TRUE(csr.ok()) << csr.status();
  EXPECT_THAT(*csr, StartsWith("-----BEGIN CERTIFICATE REQUEST-----"));
  absl::StatusOr<CsrInfo> info = ParseCsr(*csr);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "agent-1");
  // Two keys are two keys.
  EXPECT_NE(*key, *GeneratePrivateKey());
}

TEST(PkiTest, MakeCsrRefusesBadInput) {
  absl::StatusOr<std::string> csr = MakeCsr("not a key", "agent-1");
  EXPECT_EQ(csr.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(csr.status().message()), HasSubstr("no usable private key"));
  EXPECT_EQ(MakeCsr(*GeneratePrivateKey(), "").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(MakeCsr(*GeneratePrivateKey(), std::string(65, 'a')).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PkiTest, ParseCsrRejectsTamperedCsr) {
  std::string csr = *MakeCsr(*GeneratePrivateKey(), "agent-1");
  std::string der = PemToDer(csr);
  size_t at = der.find("agent-1");
  ASSERT_NE(at, std::string::npos);
  der[at + 6] = '2';  // the name a forger wants, under the original signature
  absl::StatusOr<CsrInfo> info = ParseCsr(DerToPem(der, "CERTIFICATE REQUEST"));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("signature does not verify"));

  EXPECT_EQ(ParseCsr("garbage").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ParseCsr("garbage").status().message()),
              HasSubstr("no certificate signing request"));
}

TEST(PkiTest, CaAndSignedCertificateFields) {
  Ca ca = MustMakeCa("farm-ca");
  absl::StatusOr<CertInfo> ca_info = ParseCertificate(ca.cert_pem);
  ASSERT_TRUE(ca_info.ok()) << ca_info.status();
  EXPECT_EQ(ca_info->common_name, "farm-ca");
  EXPECT_EQ(ca_info->issuer_common_name, "farm-ca");
  EXPECT_TRUE(ca_info->is_ca);
  EXPECT_EQ(ca_info->not_before, kT0 - absl::Hours(1));
  EXPECT_EQ(ca_info->not_after, kCaEnd);
  EXPECT_EQ(*KeyMatchesCertificate(ca.key_pem, ca.cert_pem), true);

  IssueOptions o;
  o.common_name = "coordinator";
  o.dns_names = {"localhost", "farm.example"};
  o.ip_addresses = {"127.0.0.1", "::1"};
  o.server = true;
  o.not_before = kT0;
  o.not_after = kT1;
  // The CSR asks for another name: the signer's options decide.
  std::string key = *GeneratePrivateKey();
  absl::StatusOr<std::string> cert = SignCsr(ca, *MakeCsr(key, "something-else"), o);
  ASSERT_TRUE(cert.ok()) << cert.status();
  absl::StatusOr<CertInfo> info = ParseCertificate(*cert);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "coordinator");
  EXPECT_EQ(info->issuer_common_name, "farm-ca");
  EXPECT_FALSE(info->is_ca);
  EXPECT_EQ(info->not_before, kT0);
  EXPECT_EQ(info->not_after, kT1);
  EXPECT_THAT(info->dns_names, ElementsAre("localhost", "farm.example"));
  EXPECT_THAT(info->ip_addresses, ElementsAre("127.0.0.1", "::1"));
  // 128 random bits, top bit clear: at most 32 hex digits, lowercase, no leading zero.
  EXPECT_THAT(info->serial_hex, MatchesRegex("[1-9a-f][0-9a-f]{0,31}"));
  EXPECT_GE(info->serial_hex.size(), 16u);  // P(fewer than 64 significant bits) = 2^-63
  EXPECT_THAT(info->fingerprint, MatchesRegex("sha256:[0-9a-f]{64}"));
  EXPECT_NE(info->fingerprint, ca_info->fingerprint);
  EXPECT_TRUE(*KeyMatchesCertificate(key, *cert));

  // A second certificate for the same CSR gets another serial.
  absl::StatusOr<CertInfo> again = ParseCertificate(*SignCsr(ca, *MakeCsr(key, "x"), o));
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->serial_hex, info->serial_hex);
  EXPECT_NE(again->fingerprint, info->fingerprint);
}

TEST(PkiTest, ParseCertificateRefusesGarbage) {
  absl::StatusOr<CertInfo> info = ParseCertificate("hello");
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(info.status().message()), "no certificate in the PEM text");
}

TEST(PkiTest, SignCsrRefusesWeakKeysAndBadOptions) {
  Ca ca = MustMakeCa("farm-ca");
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> rsa1024(EVP_RSA_gen(1024), &EVP_PKEY_free);
  // Refused by ParseCsr already, so enrolment refuses before it spends a token use.
  EXPECT_EQ(ParseCsr(CsrWithKey(rsa1024.get(), "a")).status().code(),
            absl::StatusCode::kInvalidArgument);
  absl::StatusOr<std::string> weak =
      SignCsr(ca, CsrWithKey(rsa1024.get(), "a"), ClientOptions("a"));
  EXPECT_EQ(weak.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(weak.status().message()), HasSubstr("1024 bits"));

  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> p384(EVP_EC_gen("P-384"), &EVP_PKEY_free);
  absl::StatusOr<std::string> curve = SignCsr(ca, CsrWithKey(p384.get(), "a"), ClientOptions("a"));
  EXPECT_EQ(curve.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(curve.status().message()), HasSubstr("secp384r1"));

  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> rsa2048(EVP_RSA_gen(2048), &EVP_PKEY_free);
  EXPECT_TRUE(SignCsr(ca, CsrWithKey(rsa2048.get(), "a"), ClientOptions("a")).ok());

  std::string csr = *MakeCsr(*GeneratePrivateKey(), "a");
  IssueOptions o = ClientOptions("a");
  o.ip_addresses = {"not-an-ip"};
  EXPECT_THAT(std::string(SignCsr(ca, csr, o).status().message()),
              HasSubstr("'not-an-ip' is not an IP address"));
  o = ClientOptions("a");
  o.dns_names = {"a,IP:1.2.3.4"};  // no injection through OpenSSL's config syntax
  EXPECT_EQ(SignCsr(ca, csr, o).status().code(), absl::StatusCode::kInvalidArgument);
  o = ClientOptions("a");
  o.not_after = o.not_before;
  EXPECT_THAT(std::string(SignCsr(ca, csr, o).status().message()),
              HasSubstr("validity period is empty"));
  o = ClientOptions("a");
  o.client = false;
  EXPECT_EQ(SignCsr(ca, csr, o).status().code(), absl::StatusCode::kInvalidArgument);

  // The CA's key must be the CA certificate's.
  Ca mixed{ca.cert_pem, MustMakeCa("other").key_pem};
  EXPECT_EQ(SignCsr(mixed, csr, ClientOptions("a")).status().code(),
            absl::StatusCode::kFailedPrecondition);
  // Only a CA signs.
  Issued leaf = MustIssue(ca, ClientOptions("leaf"));
  EXPECT_EQ(SignCsr(Ca{leaf.cert_pem, leaf.key_pem}, csr, ClientOptions("a")).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(PkiTest, VerifyClientCertificateAccepts) {
  Ca ca = MustMakeCa("farm-ca");
  Ca other = MustMakeCa("other-ca");
  Issued a = MustIssue(ca, ClientOptions("a"));
  // The bundle may hold several CAs (a rotation); the order does not matter.
  absl::StatusOr<CertInfo> info =
      VerifyClientCertificate(a.cert_pem, other.cert_pem + ca.cert_pem, kT0 + absl::Hours(1));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "a");
  EXPECT_EQ(info->issuer_common_name, "farm-ca");
  EXPECT_EQ(info->not_after, kT1);
  EXPECT_EQ(info->fingerprint, ParseCertificate(a.cert_pem)->fingerprint);
  // A client sending its CA after the leaf changes nothing.
  EXPECT_TRUE(
      VerifyClientCertificate(a.cert_pem + ca.cert_pem, ca.cert_pem, kT0 + absl::Hours(1)).ok());

  // A certificate for both server and client use serves as a client too.
  IssueOptions both = ClientOptions("b");
  both.server = true;
  EXPECT_TRUE(
      VerifyClientCertificate(MustIssue(ca, both).cert_pem, ca.cert_pem, kT0 + absl::Hours(1))
          .ok());
}

TEST(PkiTest, VerifyClientCertificateRefusesExpiredAndNotYetValid) {
  Ca ca = MustMakeCa("farm-ca");
  Issued a = MustIssue(ca, ClientOptions("a"));
  absl::StatusOr<CertInfo> expired =
      VerifyClientCertificate(a.cert_pem, ca.cert_pem, kT1 + absl::Seconds(1));
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(std::string(expired.status().message()),
            "certificate for 'a' expired at 2026-01-31T00:00:00Z");

  absl::StatusOr<CertInfo> early =
      VerifyClientCertificate(a.cert_pem, ca.cert_pem, kT0 - absl::Seconds(1));
  EXPECT_EQ(early.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(std::string(early.status().message()),
            "certificate for 'a' is not valid before 2026-01-01T00:00:00Z");

  // The CA's own end counts too, and the message says it was the CA's.
  Ca short_ca = MustMakeCa("short-ca", kT0 + absl::Hours(1));
  Issued b = MustIssue(short_ca, ClientOptions("b"));
  absl::StatusOr<CertInfo> ca_expired =
      VerifyClientCertificate(b.cert_pem, short_ca.cert_pem, kT0 + absl::Hours(2));
  EXPECT_EQ(ca_expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(
      std::string(ca_expired.status().message()),
      "certificate for 'b': its issuer 'short-ca''s certificate expired at 2026-01-01T01:00:00Z");
}

TEST(PkiTest, VerifyClientCertificateRefusesOtherCaAndSelfSigned) {
  Ca ca = MustMakeCa("farm-ca");
  Ca other = MustMakeCa("other-ca");
  Issued a = MustIssue(other, ClientOptions("a"));
  absl::StatusOr<CertInfo> info =
      VerifyClientCertificate(a.cert_pem, ca.cert_pem, kT0 + absl::Hours(1));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(std::string(info.status().message()),
            "certificate for 'a' is not signed by this farm's CA (issuer 'other-ca')");
  // Sending the other CA along does not make it trusted.
  info = VerifyClientCertificate(a.cert_pem + other.cert_pem, ca.cert_pem, kT0 + absl::Hours(1));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(info.status().message()),
              HasSubstr("is not signed by this farm's CA (issuer 'other-ca')"));

  // Another CA of the same name (same subject, other key): refused as well.
  Ca twin = MustMakeCa("farm-ca");
  Issued t = MustIssue(twin, ClientOptions("t"));
  info = VerifyClientCertificate(t.cert_pem, ca.cert_pem, kT0 + absl::Hours(1));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(std::string(info.status().message()),
            "certificate for 't' is not signed by this farm's CA (issuer 'farm-ca', a different CA "
            "of the same name)");

  info = VerifyClientCertificate(other.cert_pem, ca.cert_pem, kT0 + absl::Hours(1));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(std::string(info.status().message()),
            "certificate for 'other-ca' is self-signed, not issued by this farm's CA");
}

TEST(PkiTest, VerifyClientCertificateRefusesAlteredCertificate) {
  Ca ca = MustMakeCa("farm-ca");
  Issued a = MustIssue(ca, ClientOptions("agent-a"));
  std::string der = PemToDer(a.cert_pem);
  size_t at = der.find("agent-a");
  ASSERT_NE(at, std::string::npos);
  der[at + 6] = 'b';  // "agent-b" under agent-a's signature
  absl::StatusOr<CertInfo> info =
      VerifyClientCertificate(DerToPem(der, "CERTIFICATE"), ca.cert_pem, kT0 + absl::Hours(1));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(info.status().message()),
              StartsWith("certificate for 'agent-b' has a signature that does not verify"));
}

TEST(PkiTest, VerifyClientCertificateRefusesServerOnlyCertificate) {
  Ca ca = MustMakeCa("farm-ca");
  IssueOptions o = ClientOptions("coordinator");
  o.client = false;
  o.server = true;
  Issued server = MustIssue(ca, o);
  absl::StatusOr<CertInfo> info =
      VerifyClientCertificate(server.cert_pem, ca.cert_pem, kT0 + absl::Hours(1));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(std::string(info.status().message()),
            "certificate for 'coordinator' does not allow client authentication (its "
            "extendedKeyUsage lacks "
            "clientAuth)");
}

// A self-signed CA that also allows digitalSignature and has no
// extendedKeyUsage, as an operator's own CA may: OpenSSL's purpose check
// alone would accept it as a client certificate.
std::string PermissiveCa(const std::string& cn) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(EVP_EC_gen("P-256"), &EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), &X509_free);
  X509_set_version(x.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 7);
  X509_NAME_add_entry_by_txt(X509_get_subject_name(x.get()), "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x.get(), X509_get_subject_name(x.get()));
  ASN1_TIME_set(X509_getm_notBefore(x.get()), absl::ToTimeT(kT0 - absl::Hours(1)));
  ASN1_TIME_set(X509_getm_notAfter(x.get()), absl::ToTimeT(kCaEnd));
  X509_set_pubkey(x.get(), key.get());
  for (const auto& [nid, value] : std::vector<std::pair<int, const char*>>{
           {NID_basic_constraints, "critical,CA:TRUE"},
           {NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"}}) {
    X509V3_CTX ctx;
    X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value);
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x.get(), key.get(), EVP_sha256());
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_X509(bio.get(), x.get());
  char* data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

TEST(PkiTest, VerifyClientCertificateRefusesACaAsClient) {
  // The farm CA itself, e.g. a transport that passed the chain without its leaf.
  Ca ca = MustMakeCa("farm-ca");
  absl::StatusOr<CertInfo> info =
      VerifyClientCertificate(ca.cert_pem, ca.cert_pem, kT0 + absl::Hours(1));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(std::string(info.status().message()),
            "certificate for 'farm-ca' is a CA certificate, not a client's (a client presents its "
            "own certificate first, then any intermediates)");
  // An operator's CA whose key usage would pass as a client's: still no.
  std::string permissive = PermissiveCa("ops-ca");
  ASSERT_TRUE(ParseCertificate(permissive)->is_ca);
  info = VerifyClientCertificate(permissive, permissive, kT0 + absl::Hours(1));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(info.status().message()),
              StartsWith("certificate for 'ops-ca' is a CA certificate, not a client's"));
}

TEST(PkiTest, VerifyClientCertificateRefusesGarbage) {
  Ca ca = MustMakeCa("farm-ca");
  absl::StatusOr<CertInfo> info = VerifyClientCertificate("", ca.cert_pem, kT0);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(info.status().message()), "no certificate in the PEM text");
  info = VerifyClientCertificate("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                                 ca.cert_pem, kT0);
  EXPECT_EQ(info.status().code(), absl::StatusCode::kInvalidArgument);
  // A farm whose CA bundle is empty is misconfigured; the peer is not to blame.
  Issued a = MustIssue(ca, ClientOptions("a"));
  info = VerifyClientCertificate(a.cert_pem, "", kT0 + absl::Hours(1));
  EXPECT_EQ(info.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(info.status().message()), HasSubstr("CA bundle"));
}

TEST(PkiTest, KeyMatchesCertificate) {
  Ca ca = MustMakeCa("farm-ca");
  Issued a = MustIssue(ca, ClientOptions("a"));
  Issued b = MustIssue(ca, ClientOptions("b"));
  EXPECT_EQ(*KeyMatchesCertificate(a.key_pem, a.cert_pem), true);
  EXPECT_EQ(*KeyMatchesCertificate(b.key_pem, a.cert_pem), false);
  EXPECT_EQ(*KeyMatchesCertificate(ca.key_pem, a.cert_pem), false);
  EXPECT_EQ(KeyMatchesCertificate("nope", a.cert_pem).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(KeyMatchesCertificate(a.key_pem, "nope").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PkiTest, PublicKeyPin) {
  Ca ca = MustMakeCa("farm-ca");
  absl::StatusOr<std::string> pin = PublicKeyPin(ca.cert_pem);
  ASSERT_TRUE(pin.ok()) << pin.status();
  EXPECT_THAT(*pin, MatchesRegex("sha256:[0-9a-f]{64}"));
  // The pin is of the key, not of the certificate: a CA certificate re-made
  // with the same key (renewed) keeps it; another CA does not share it.
  EXPECT_NE(*pin, ParseCertificate(ca.cert_pem)->fingerprint);
  EXPECT_NE(*pin, *PublicKeyPin(MustMakeCa("farm-ca").cert_pem));
  Issued a = MustIssue(ca, ClientOptions("a"));
  EXPECT_NE(*pin, *PublicKeyPin(a.cert_pem));
  // The same as `openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum`, computed
  // here by hand.
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(ca.cert_pem.data(), -1), &BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> x(
      PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(X509_get0_pubkey(x.get()), &der);
  ASSERT_GT(len, 0);
  unsigned char md[32];
  unsigned int md_len = 0;
  ASSERT_EQ(EVP_Digest(der, static_cast<size_t>(len), md, &md_len, EVP_sha256(), nullptr), 1);
  OPENSSL_free(der);
  EXPECT_EQ(*pin, absl::StrCat("sha256:", absl::BytesToHexString(absl::string_view(
                                              reinterpret_cast<char*>(md), md_len))));
  EXPECT_EQ(PublicKeyPin("x").status().code(), absl::StatusCode::kInvalidArgument);
}

// A gRPC TLS server as the coordinator runs it (client certificates asked
// for, not required), on 127.0.0.1 port 0, with a certificate from `ca`.
class TlsServer {
 public:
  // `service` (not owned) answers calls; by default one that answers nothing.
  explicit TlsServer(const Ca& ca, bool tls = true,
                     grpc::CallbackGenericService* service = nullptr) {
    IssueOptions o;
    o.common_name = "coordinator";
    o.dns_names = {"localhost"};
    o.ip_addresses = {"127.0.0.1"};
    o.server = true;
    o.not_before = absl::Now() - absl::Hours(1);
    o.not_after = absl::Now() + absl::Hours(1);
    Issued server = MustIssue(ca, o);
    grpc::SslServerCredentialsOptions options(GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_BUT_DONT_VERIFY);
    options.pem_root_certs = ca.cert_pem;
    // The chain file holds leaf + CA, so the handshake sends the CA too.
    options.pem_key_cert_pairs.push_back({server.key_pem, server.cert_pem + ca.cert_pem});
    grpc::ServerBuilder builder;
    builder.AddListeningPort(
        "127.0.0.1:0",
        tls ? grpc::SslServerCredentials(options) : grpc::InsecureServerCredentials(), &port_);
    // A server needs a service: a generic one. A callback one, so gRPC's own
    // threads serve connections.
    builder.RegisterCallbackGenericService(service != nullptr ? service : &service_);
    server_ = builder.BuildAndStart();
  }
  ~TlsServer() {
    if (server_) server_->Shutdown();
  }
  int port() const { return port_; }

 private:
  grpc::CallbackGenericService service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST(PkiFetchTest, FetchesTheChainAGrpcServerSends) {
  Ca ca = MustMakeCa("farm-ca");
  TlsServer server(ca);
  ASSERT_NE(server.port(), 0);
  absl::StatusOr<std::vector<std::string>> chain =
      FetchServerCertificates(absl::StrCat("127.0.0.1:", server.port()), absl::Seconds(30));
  ASSERT_TRUE(chain.ok()) << chain.status();
  ASSERT_EQ(chain->size(), 2u);
  EXPECT_EQ(ParseCertificate((*chain)[0])->common_name, "coordinator");
  EXPECT_EQ(ParseCertificate((*chain)[1])->common_name, "farm-ca");
  // What an enrolling agent checks before it trusts the CA it was sent.
  EXPECT_EQ(*PublicKeyPin((*chain)[1]), *PublicKeyPin(ca.cert_pem));
  EXPECT_NE(*PublicKeyPin((*chain)[0]), *PublicKeyPin(ca.cert_pem));

  // By name (SNI sent; "localhost" may resolve to ::1 first, where nothing
  // listens, and then to 127.0.0.1).
  chain = FetchServerCertificates(absl::StrCat("localhost:", server.port()), absl::Seconds(30));
  ASSERT_TRUE(chain.ok()) << chain.status();
  EXPECT_EQ(*PublicKeyPin(chain->back()), *PublicKeyPin(ca.cert_pem));
}

TEST(PkiFetchTest, PlaintextServerIsNoTlsServer) {
  TlsServer server(MustMakeCa("farm-ca"), /*tls=*/false);
  ASSERT_NE(server.port(), 0);
  absl::StatusOr<std::vector<std::string>> chain =
      FetchServerCertificates(absl::StrCat("127.0.0.1:", server.port()), absl::Seconds(30));
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(chain.status().message()), HasSubstr("did not complete a TLS handshake"));
}

// A TCP socket bound to 127.0.0.1 port 0, listening or not; closed at the end.
class BoundSocket {
 public:
  explicit BoundSocket(bool listen_too) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    if (listen_too) {
      EXPECT_EQ(listen(fd_, 4), 0);
    }
    socklen_t len = sizeof(addr);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
  }
  ~BoundSocket() { close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

TEST(PkiFetchTest, RefusedAndSilentServers) {
  // Bound but not listening: the kernel refuses, and the port stays ours.
  BoundSocket refusing(/*listen_too=*/false);
  absl::StatusOr<std::vector<std::string>> chain =
      FetchServerCertificates(absl::StrCat("127.0.0.1:", refusing.port()), absl::Seconds(30));
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(chain.status().message()), HasSubstr("Connection refused"));

  // Listening, never answering: the TCP connection completes in the backlog
  // and the handshake waits until the timeout.
  BoundSocket silent(/*listen_too=*/true);
  chain =
      FetchServerCertificates(absl::StrCat("127.0.0.1:", silent.port()), absl::Milliseconds(200));
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(std::string(chain.status().message()), HasSubstr("no TLS handshake with 127.0.0.1:"));
}

TEST(PkiFetchTest, RefusesMalformedAddresses) {
  for (const char* bad :
       {"localhost", "[::1", "[::1]7070", ":7070", "host:", "host:x", "::1:7070"}) {
    EXPECT_EQ(FetchServerCertificates(bad, absl::Seconds(1)).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

// What the coordinator's transport does with a call (issue 10's design):
// the server asks for a client certificate without verifying it, takes the
// peer's PEM from the auth context and checks it with
// VerifyClientCertificate. Records the PEM of each call.
class PeerCertificateRecorder : public grpc::CallbackGenericService {
 public:
  struct Peer {
    std::string cert;   // GRPC_X509_PEM_CERT_PROPERTY_NAME
    std::string chain;  // GRPC_X509_PEM_CERT_CHAIN_PROPERTY_NAME
  };
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override {
    Peer peer;
    for (const grpc::string_ref& v :
         ctx->auth_context()->FindPropertyValues(GRPC_X509_PEM_CERT_PROPERTY_NAME)) {
      peer.cert.append(v.data(), v.size());
    }
    for (const grpc::string_ref& v :
         ctx->auth_context()->FindPropertyValues(GRPC_X509_PEM_CERT_CHAIN_PROPERTY_NAME)) {
      peer.chain.append(v.data(), v.size());
    }
    {
      absl::MutexLock lock(&mu_);
      peers_.push_back(std::move(peer));
    }
    class Refuse : public grpc::ServerGenericBidiReactor {
     public:
      Refuse() { Finish(grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "recorded")); }
      void OnDone() override { delete this; }
    };
    return new Refuse;
  }
  // The peer of the `n`th call (from 1), once it has come; empty after 30 s.
  Peer WaitForCall(size_t n) {
    absl::MutexLock lock(&mu_);
    auto arrived = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return peers_.size() >= n; };
    if (!mu_.AwaitWithTimeout(absl::Condition(&arrived), absl::Seconds(30))) return {};
    return peers_[n - 1];
  }

 private:
  absl::Mutex mu_;
  std::vector<Peer> peers_ ABSL_GUARDED_BY(mu_);
};

// One call to "localhost:port" (so the server's certificate is checked
// against `trusted_ca` and the name "localhost") with `client` as the
// client certificate; returns its status.
grpc::Status CallWithCertificate(int port, const std::string& trusted_ca, const Issued& client) {
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = trusted_ca;
  options.pem_private_key = client.key_pem;
  options.pem_cert_chain = client.cert_pem;
  grpc::GenericStub stub(
      grpc::CreateChannel(absl::StrCat("localhost:", port), grpc::SslCredentials(options)));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  grpc::Slice empty("");
  grpc::ByteBuffer request(&empty, 1);  // a default ByteBuffer is no message at all
  grpc::ByteBuffer response;
  // Notify() publishes `result` to the waiter (happens-before).
  absl::Notification finished;
  grpc::Status result;
  stub.UnaryCall(&ctx, "/musafarm.test.Pki/Call", grpc::StubOptions(), &request, &response,
                 [&](grpc::Status status) {
                   result = std::move(status);
                   finished.Notify();
                 });
  finished.WaitForNotification();
  return result;
}

TEST(PkiGrpcTest, ServerVerifiesTheClientCertificateTheHandshakeCarried) {
  Ca ca = MustMakeCa("farm-ca");
  Ca other = MustMakeCa("other-ca");
  PeerCertificateRecorder recorder;
  TlsServer server(ca, /*tls=*/true, &recorder);
  ASSERT_NE(server.port(), 0);
  IssueOptions o = ClientOptions("agent-a");
  o.not_before = absl::Now() - absl::Hours(1);
  o.not_after = absl::Now() + absl::Hours(1);

  // The farm's agent: the call reaches the service, and its certificate
  // verifies as agent-a.
  Issued a = MustIssue(ca, o);
  grpc::Status status = CallWithCertificate(server.port(), ca.cert_pem, a);
  EXPECT_EQ(status.error_message(), "recorded");
  PeerCertificateRecorder::Peer peer = recorder.WaitForCall(1);
  // gRPC 1.51 with OpenSSL: x509_pem_cert is the leaf; x509_pem_cert_chain
  // is the chain WITHOUT the leaf on the server side (here the farm CA,
  // which the client did not even send). So the transport passes
  // cert + chain; the chain alone names the CA and is refused.
  EXPECT_EQ(ParseCertificate(peer.cert)->fingerprint, ParseCertificate(a.cert_pem)->fingerprint);
  EXPECT_THAT(ParseCertificate(peer.chain)->common_name, ::testing::Not("agent-a"));
  absl::StatusOr<CertInfo> info =
      VerifyClientCertificate(peer.cert + peer.chain, ca.cert_pem, absl::Now());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->common_name, "agent-a");
  EXPECT_EQ(info->fingerprint, ParseCertificate(a.cert_pem)->fingerprint);
  EXPECT_TRUE(VerifyClientCertificate(peer.cert, ca.cert_pem, absl::Now()).ok());
  info = VerifyClientCertificate(peer.chain, ca.cert_pem, absl::Now());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(info.status().message()),
              HasSubstr("is a CA certificate, not a client's"));

  // Another CA's certificate passes the handshake (not verified there) and
  // is refused with words, not an opaque handshake failure.
  Issued stranger = MustIssue(other, o);
  status = CallWithCertificate(server.port(), ca.cert_pem, stranger);
  EXPECT_EQ(status.error_message(), "recorded");
  peer = recorder.WaitForCall(2);
  ASSERT_FALSE(peer.cert.empty());
  info = VerifyClientCertificate(peer.cert + peer.chain, ca.cert_pem, absl::Now());
  EXPECT_EQ(info.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(std::string(info.status().message()),
            "certificate for 'agent-a' is not signed by this farm's CA (issuer 'other-ca')");

  // A client that trusts another CA refuses this server (the CLI's check).
  status = CallWithCertificate(server.port(), other.cert_pem, a);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
}

}  // namespace
}  // namespace musafarm::pki
