#include "cli/package_set.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::cli {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kSha1(64, 'a');
const std::string kSha2(64, 'b');

std::string Set(const std::string& name, const std::string& url1, const std::string& sha1,
                const std::string& url2 = "https://mirror.example/mudnn.tgz?t=s3cret") {
  return "name: " + name +
         "\npackages:\n"
         "  - {name: musa_toolkits, version: rc3.1.0, secret: MUSA_TOOLKITS_URL, url: \"" +
         url1 + "\", sha256: " + sha1 +
         "}\n"
         "  - {name: mudnn, version: rc2.7.0, secret: MUDNN_URL, url: \"" + url2 +
         "\", sha256: " + kSha2 + "}\n";
}

TEST(PackageSetTest, ReadsNameVersionsSecretsAndADigest) {
  absl::StatusOr<PackageSet> set =
      ParsePackageSet(Set("rc3.1.0-qy2", "https://dl.example/musa.tgz?t=s3cret", kSha1), "s.yaml");
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(set->name, "rc3.1.0-qy2");
  ASSERT_EQ(set->packages.size(), 2u);
  EXPECT_EQ(set->packages[0].secret, "MUSA_TOOLKITS_URL");
  EXPECT_EQ(set->packages[0].url, "https://dl.example/musa.tgz?t=s3cret");
  EXPECT_EQ(set->packages[1].version, "rc2.7.0");
  EXPECT_EQ(set->digest.substr(0, 7), "sha256:");
  EXPECT_EQ(set->digest.size(), 7u + 64u);
}

TEST(PackageSetTest, TheDigestFollowsContentNotUrls) {
  const std::string a = ParsePackageSet(Set("s", "https://a/x", kSha1), "f")->digest;
  // Another mirror or token: the same packages, the same key.
  EXPECT_EQ(ParsePackageSet(Set("s", "https://b/y?t=new", kSha1), "f")->digest, a);
  // Another archive, or another set name: another key.
  EXPECT_NE(ParsePackageSet(Set("s", "https://a/x", std::string(64, 'c')), "f")->digest, a);
  EXPECT_NE(ParsePackageSet(Set("t", "https://a/x", kSha1), "f")->digest, a);
}

TEST(PackageSetTest, BadFilesSayWhereAndNeverQuoteAUrl) {
  auto error = [](const std::string& yaml) {
    absl::StatusOr<PackageSet> set = ParsePackageSet(yaml, "s.yaml");
    return set.ok() ? std::string("parsed") : std::string(set.status().message());
  };
  EXPECT_EQ(error(Set("s", "https://dl.example/x?t=s3cret", "abc")),
            "s.yaml: packages[0].sha256: expected 64 lower-case hex digits");
  EXPECT_EQ(error("name: s\npackages: []\n"),
            "s.yaml: packages: expected a non-empty list of packages");
  EXPECT_EQ(error("packages: [{name: a}]\n"), "s.yaml: package set.name: missing");
  EXPECT_EQ(error("name: s\npackages: [{name: a, version: 1, secret: X, sha256: " + kSha1 +
                  "}]\n"),
            "s.yaml: packages[0].url: missing");
  EXPECT_THAT(error("name: s\nurls: x\n"), HasSubstr("s.yaml: urls: unknown field"));
  EXPECT_THAT(error("name: s\npackages: [{name: a, version: 1, secret: 'A B', url: "
                    "'https://dl.example/?t=s3cret', sha256: " + kSha1 + "}]\n"),
              AllOf(HasSubstr("packages[0].secret: 'A B' is not a secret name"),
                    Not(HasSubstr("s3cret"))));
  const std::string twice = Set("s", "https://dl.example/x", kSha1) +
                            "  - {name: mccl, version: 1, secret: MUDNN_URL, url: u, sha256: " +
                            kSha1 + "}\n";
  EXPECT_EQ(error(twice), "s.yaml: packages[2].secret: secret MUDNN_URL is filled by two packages");
}

}  // namespace
}  // namespace musafarm::cli
