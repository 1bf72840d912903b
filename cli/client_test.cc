#include "cli/client.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::cli {
namespace {

using ::testing::HasSubstr;

TEST(ParseConfigCoordinatorTest, ReadsTheCoordinatorKey) {
  EXPECT_EQ(ParseConfigCoordinator("coordinator: farm.example:7070\n"), "farm.example:7070");
  EXPECT_EQ(ParseConfigCoordinator("# musafarm\nother: x\n  coordinator:  \"h:1\"  # main\n"),
            "h:1");
  EXPECT_EQ(ParseConfigCoordinator("coordinator: 'h:2'"), "h:2");
}

TEST(ParseConfigCoordinatorTest, AbsentOrEmptyIsNullopt) {
  EXPECT_EQ(ParseConfigCoordinator(""), std::nullopt);
  EXPECT_EQ(ParseConfigCoordinator("# coordinator: h:1\nname: x\n"), std::nullopt);
  EXPECT_EQ(ParseConfigCoordinator("coordinator:\n"), std::nullopt);
}

// Saves and restores the environment variables that ResolveCoordinator reads.
class ResolveCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {kCoordinatorEnv, kConfigEnv, "HOME"}) {
      const char* v = std::getenv(name);
      saved_.push_back({name, v ? std::optional<std::string>(v) : std::nullopt});
      unsetenv(name);
    }
    dir_ = ::testing::TempDir();
    // An empty home by default: no ~/.config/musafarm/config.yaml.
    home_ = absl::StrCat(dir_, "/mfhome_", ::testing::UnitTest::GetInstance()->random_seed(), "_",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(home_ + "/.config/musafarm");
    setenv("HOME", home_.c_str(), 1);
  }
  void TearDown() override {
    for (const auto& [name, value] : saved_) {
      if (value) {
        setenv(name.c_str(), value->c_str(), 1);
      } else {
        unsetenv(name.c_str());
      }
    }
  }
  std::string WriteFile(const std::string& path, const std::string& content) {
    std::ofstream(path) << content;
    return path;
  }

  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
  std::string dir_;
  std::string home_;
};

TEST_F(ResolveCoordinatorTest, FlagBeatsEnvBeatsConfigBeatsDefault) {
  const std::string cfg = WriteFile(home_ + "/cfg.yaml", "coordinator: config:3\n");
  setenv(kConfigEnv, cfg.c_str(), 1);
  setenv(kCoordinatorEnv, "env:2", 1);
  EXPECT_EQ(*ResolveCoordinator("flag:1"), "flag:1");
  EXPECT_EQ(*ResolveCoordinator(""), "env:2");
  unsetenv(kCoordinatorEnv);
  EXPECT_EQ(*ResolveCoordinator(""), "config:3");
  unsetenv(kConfigEnv);
  EXPECT_EQ(*ResolveCoordinator(""), "127.0.0.1:7070");
}

TEST_F(ResolveCoordinatorTest, EmptyEnvIsUnset) {
  setenv(kCoordinatorEnv, "", 1);
  EXPECT_EQ(*ResolveCoordinator(""), kDefaultCoordinator);
}

TEST_F(ResolveCoordinatorTest, ReadsTheConfigFileInHome) {
  WriteFile(home_ + "/.config/musafarm/config.yaml", "coordinator: home:4\n");
  EXPECT_EQ(*ResolveCoordinator(""), "home:4");
  // $MUSAFARM_CONFIG takes the place of the file in $HOME.
  const std::string cfg = WriteFile(home_ + "/other.yaml", "coordinator: other:5\n");
  setenv(kConfigEnv, cfg.c_str(), 1);
  EXPECT_EQ(*ResolveCoordinator(""), "other:5");
}

TEST_F(ResolveCoordinatorTest, ConfigWithoutTheKeyFallsBackToDefault) {
  WriteFile(home_ + "/.config/musafarm/config.yaml", "# nothing here\n");
  EXPECT_EQ(*ResolveCoordinator(""), kDefaultCoordinator);
}

TEST_F(ResolveCoordinatorTest, UnreadableExplicitConfigIsAnError) {
  setenv(kConfigEnv, (home_ + "/missing.yaml").c_str(), 1);
  absl::StatusOr<std::string> r = ResolveCoordinator("");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("missing.yaml"));
  // A flag needs no config file at all.
  EXPECT_EQ(*ResolveCoordinator("flag:1"), "flag:1");
}

TEST(ExitCodeForStatusTest, MapsCodesToExitCodes) {
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::OK), 0);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::INVALID_ARGUMENT), 2);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::NOT_FOUND), 2);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::FAILED_PRECONDITION), 2);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::UNAVAILABLE), 3);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::DEADLINE_EXCEEDED), 3);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::INTERNAL), 1);
  EXPECT_EQ(ExitCodeForStatus(grpc::StatusCode::PERMISSION_DENIED), 1);
}

TEST(ReportRpcErrorTest, SaysWhatIsWrong) {
  std::ostringstream out, err;
  CommandEnv env;
  env.coordinator = "127.0.0.1:1";
  env.out = &out;
  env.err = &err;
  EXPECT_EQ(ReportRpcError(env, grpc::Status(grpc::StatusCode::UNAVAILABLE, "refused")), 3);
  EXPECT_EQ(err.str(), "musafarm: cannot reach coordinator at 127.0.0.1:1: refused\n");
  err.str("");
  EXPECT_EQ(ReportRpcError(env, grpc::Status(grpc::StatusCode::NOT_FOUND, "no job 9")), 2);
  EXPECT_EQ(err.str(), "musafarm: no job 9\n");
  EXPECT_EQ(out.str(), "");
}

}  // namespace
}  // namespace musafarm::cli
