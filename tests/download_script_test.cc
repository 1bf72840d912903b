// dockerfiles/common/download.sh checks each download against the package
// set's sha256 (issue 18, item 5): `musafarm submit --package-set` passes
// the set's digests as the build arg PACKAGE_SHA256S, which the fetch step's
// environment carries. A wrong digest fails the step naming the package and
// leaves no file; the right one passes. Run as the Dockerfiles run it.
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/subprocess.h"
#include "content/digest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::tests {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct Outcome {
  int exit_code = -1;
  std::string output;
};

Outcome Download(const std::string& package_sha256s, const std::string& out) {
  EnvMap env = InheritedEnv();
  env["MUSA_TOOLKITS_URL"] = "file://" + ::testing::TempDir() + "/toolkit.tar.gz";
  env["PACKAGE_SHA256S"] = package_sha256s;
  env["MUSAFARM_DOWNLOAD_RETRIES"] = "1";
  const Child c = Spawn({"bash", std::string(MF_SOURCE_DIR) + "/dockerfiles/common/download.sh",
                         "--what", "MUSA toolkit", "--secret", "musa_toolkits_url", "--env",
                         "MUSA_TOOLKITS_URL", "-o", out},
                        env, ::testing::TempDir());
  Outcome r;
  const int status =
      Supervise(c, [&](std::string d) { r.output += d; }, [] {}, absl::Seconds(1), nullptr);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(DownloadScriptTest, APackageSetsSha256IsVerifiedAndAWrongOneFailsNamingThePackage) {
  const std::string bytes = "not really a toolkit\n";
  std::ofstream(::testing::TempDir() + "/toolkit.tar.gz") << bytes;
  const std::string right = content::DigestOf(bytes).sha256();
  const std::string wrong(64, 'b');
  const std::string out = ::testing::TempDir() + "/pkgs/toolkit";
  fs::remove_all(::testing::TempDir() + "/pkgs");

  Outcome r = Download(absl::StrCat("MUDNN_URL=", std::string(64, 'c'), " MUSA_TOOLKITS_URL=", wrong), out);
  EXPECT_EQ(r.exit_code, 5) << r.output;
  EXPECT_THAT(r.output, HasSubstr("MUSA toolkit: sha256 mismatch: expected " + wrong + ", got " + right));
  EXPECT_FALSE(fs::exists(out));

  r = Download(absl::StrCat("MUDNN_URL=", std::string(64, 'c'), ",MUSA_TOOLKITS_URL=", right), out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("sha256 " + right));
  EXPECT_TRUE(fs::exists(out));

  // A set that lists no digest for this package: downloaded unchecked, as before.
  fs::remove(out);
  r = Download(absl::StrCat("MUDNN_URL=", std::string(64, 'c')), out);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  // A malformed entry is a usage error, not a silent skip.
  r = Download("MUSA_TOOLKITS_URL", out);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("PACKAGE_SHA256S: 'MUSA_TOOLKITS_URL' is not VAR=SHA256"));
}

}  // namespace
}  // namespace musafarm::tests
