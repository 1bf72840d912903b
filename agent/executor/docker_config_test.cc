#include "agent/executor/docker_config.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::agent {
namespace {

namespace fs = std::filesystem;

unsigned ModeOf(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  return st.st_mode & 07777;
}

TEST(DockerConfigTest, RegistryOfAnImageAsDockerLoginKeysIt) {
  EXPECT_EQ(RegistryOf("harbor.example.com/musa/torch:py3.9"), "harbor.example.com");
  EXPECT_EQ(RegistryOf("127.0.0.1:5000/img:tag"), "127.0.0.1:5000");
  EXPECT_EQ(RegistryOf("localhost/img"), "localhost");
  EXPECT_EQ(RegistryOf("library/ubuntu:22.04"), "https://index.docker.io/v1/");
  EXPECT_EQ(RegistryOf("ubuntu"), "https://index.docker.io/v1/");
}

TEST(DockerConfigTest, PrivateConfigForEachRegistryRemovedAfterUse) {
  const std::string work = ::testing::TempDir() + "/docker_config_work";
  fs::remove_all(work);
  fs::create_directories(work);
  std::string dir;
  {
    auto config = TempDockerConfig::Write(
        work, "42", {"harbor.example.com/a:1", "harbor.example.com/b:1", "127.0.0.1:5000/c"},
        "robot$ci:pa ss");
    ASSERT_TRUE(config.ok()) << config.status();
    dir = (*config)->path();
    EXPECT_EQ(dir, work + "/.docker-config-42");
    EXPECT_EQ(ModeOf(dir), 0700u);
    EXPECT_EQ(ModeOf(dir + "/config.json"), 0600u);
    std::ifstream in(dir + "/config.json");
    std::stringstream json;
    json << in.rdbuf();
    const std::string auth = absl::Base64Escape("robot$ci:pa ss");
    EXPECT_EQ(json.str(), "{\"auths\": {\"127.0.0.1:5000\": {\"auth\": \"" + auth +
                              "\"}, \"harbor.example.com\": {\"auth\": \"" + auth + "\"}}}\n");
  }
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_THAT(TempDockerConfig::Write(work, "43", {"x/y"}, "no-colon").status().message(),
              ::testing::HasSubstr("must be 'user:password'"));
  EXPECT_FALSE(fs::exists(work + "/.docker-config-43"));
}

}  // namespace
}  // namespace musafarm::agent
