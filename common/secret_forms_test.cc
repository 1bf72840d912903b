#include "common/secret_forms.h"

#include "absl/strings/escaping.h"
#include "common/redactor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm {
namespace {

using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(SecretFormsTest, PercentEncodingAsCurlAndPythonWriteIt) {
  // urllib.parse.quote("a b/c:d@e%f~g", safe="") and curl_easy_escape.
  EXPECT_EQ(PercentEncode("a b/c:d@e%f~g", true), "a%20b%2Fc%3Ad%40e%25f~g");
  EXPECT_EQ(PercentEncode("a b/c:d@e%f~g", false), "a%20b%2fc%3ad%40e%25f~g");
  // quote() keeps '/'; quote_plus() writes a space as '+'.
  EXPECT_EQ(PercentEncode("a b/c", true, "/"), "a%20b/c");
  EXPECT_EQ(PercentEncode("a b/c", true, "", true), "a+b%2Fc");
  EXPECT_EQ(PercentEncode("\xff\x01", true), "%FF%01");
  EXPECT_EQ(PercentDecode("a%20b%2fc%zz%4"), "a b/c%zz%4");
}

TEST(SecretFormsTest, UrlSecretsSplitIntoUserinfoAndPassword) {
  UrlSecretParts p = SplitUrlSecret("https://bot:p%40ss:w@reg.example.com:5000/v2?x=@y");
  EXPECT_EQ(p.userinfo, "bot:p%40ss:w");
  EXPECT_EQ(p.password, "p%40ss:w");
  EXPECT_EQ(SplitUrlSecret("postgres://user@db/x").password, "");
  EXPECT_EQ(SplitUrlSecret("postgres://user@db/x").userinfo, "user");
  EXPECT_EQ(SplitUrlSecret("not a url: x@y").userinfo, "");
  EXPECT_EQ(SplitUrlSecret("https://host/path@x").userinfo, "");
}

TEST(SecretFormsTest, EveryFormOfAUrlSecret) {
  const std::string url = "https://bot:S3cr3t%2Fp%40ss%20w0rd@registry.example.com/v2/";
  const std::vector<std::string> forms = SecretForms(url);
  EXPECT_THAT(forms, Contains(url));
  EXPECT_THAT(forms, Contains(PercentEncode(url, true)));
  EXPECT_THAT(forms, Contains(PercentEncode(url, false)));
  EXPECT_THAT(forms, Contains(PercentEncode(url, true, "/")));
  EXPECT_THAT(forms, Contains("bot:S3cr3t%2Fp%40ss%20w0rd"));
  EXPECT_THAT(forms, Contains("bot:S3cr3t/p@ss w0rd"));
  EXPECT_THAT(forms, Contains("S3cr3t%2Fp%40ss%20w0rd"));
  EXPECT_THAT(forms, Contains("S3cr3t/p@ss w0rd"));
  EXPECT_THAT(forms, Contains("S3cr3t%2fp%40ss%20w0rd"));
  EXPECT_THAT(forms, Contains("S3cr3t%2Fp%40ss+w0rd"));
  // A password written encoded in the URL is masked decoded too.
  EXPECT_THAT(SecretForms("https://u:a%2Fb%40cd@h/"), Contains("a/b@cd"));
  // base64 only when declared: the value's, without padding (so the padded
  // text is caught too), in both alphabets.
  EXPECT_THAT(forms, Not(Contains(absl::WebSafeBase64Escape(url))));
  const std::vector<std::string> with64 = SecretForms("pa?>ss", {"base64"});
  EXPECT_THAT(with64, Contains("cGE/PnNz"));
  EXPECT_THAT(with64, Contains("cGE_PnNz"));
  EXPECT_THAT(SecretForms("ab", {"base64"}), Contains("YWI"));
  EXPECT_THAT(SecretForms(""), ::testing::IsEmpty());
}

TEST(SecretFormsTest, ShortDerivedFormsAreNotMaskedTheValueAlwaysIs) {
  const std::vector<std::string> forms = SecretForms("https://u:ab@h/");
  EXPECT_THAT(forms, Not(Contains("ab")));
  EXPECT_THAT(forms, Contains("u:ab"));
  EXPECT_THAT(SecretForms("x"), Contains("x"));
}

TEST(SecretFormsTest, OnlyBase64IsADeclarableForm) {
  EXPECT_TRUE(CheckSecretForm("base64").ok());
  EXPECT_THAT(CheckSecretForm("hex").message(), HasSubstr("unknown secret form 'hex' (forms: base64"));
}

TEST(SecretFormsTest, RedactorFedTheFormsMasksEachInAStream) {
  const std::string url = "https://bot:S3cr3t%2Fp%40ss@registry.example.com/";
  Redactor r(SecretForms(url, {"base64"}));
  const std::string text = "a " + url + " b " + PercentEncode(url, false) +
                           " c S3cr3t/p@ss c S3cr3t%2fp%40ss d " + absl::Base64Escape(url) + " e";
  std::string out;
  for (char ch : text) out += r.Feed(std::string(1, ch));  // one byte per chunk
  out += r.Finish();
  EXPECT_EQ(out, "a *** b *** c *** c *** d ***== e");  // the padding is no secret
}

}  // namespace
}  // namespace musafarm
