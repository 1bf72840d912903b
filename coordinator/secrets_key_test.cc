#include "coordinator/secrets_key.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "absl/strings/escaping.h"
#include "coordinator/secret_cipher.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::coordinator {
namespace {

using ::testing::HasSubstr;

class SecretsKeyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = ::testing::TempDir() + "secrets_key.XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(SecretsKeyTest, MadeOnceInTheDataDirReadableByItsOwnerOnly) {
  auto made = LoadSecretsKey("", nullptr, dir_);
  ASSERT_TRUE(made.ok()) << made.status();
  EXPECT_TRUE(made->created);
  EXPECT_EQ(made->key.size(), SecretCipher::kKeySize);
  EXPECT_EQ(made->source, dir_ + "/secrets.key");
  struct stat st;
  ASSERT_EQ(::stat(made->source.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = LoadSecretsKey("", nullptr, dir_);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_FALSE(again->created);
  EXPECT_EQ(again->key, made->key);
}

TEST_F(SecretsKeyTest, FileFlagThenEnvironmentWinOverTheDataDir) {
  const std::string file_key(32, 'f');
  const std::string env_key(32, 'e');
  std::ofstream(dir_ + "/k") << "  " << absl::Base64Escape(file_key) << "\n";
  const std::string env = absl::Base64Escape(env_key);
  EXPECT_EQ(LoadSecretsKey(dir_ + "/k", env.c_str(), dir_)->key, file_key);
  auto from_env = LoadSecretsKey("", env.c_str(), dir_);
  EXPECT_EQ(from_env->key, env_key);
  EXPECT_EQ(from_env->source, "MUSAFARM_SECRETS_KEY");
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/secrets.key"));
}

TEST_F(SecretsKeyTest, BadKeysNameTheirSourceNotTheirValue) {
  EXPECT_THAT(LoadSecretsKey("", "c2hvcnQ=", dir_).status().message(),
              HasSubstr("MUSAFARM_SECRETS_KEY: not a secrets key (want base64 of 32 bytes"));
  EXPECT_THAT(LoadSecretsKey(dir_ + "/missing", nullptr, dir_).status().message(),
              HasSubstr("cannot read secrets key file " + dir_ + "/missing"));
}

}  // namespace
}  // namespace musafarm::coordinator
