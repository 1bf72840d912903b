#include "cli/config.h"

#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::cli {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::optional<std::string> Coordinator(const std::string& yaml) {
  absl::StatusOr<CliConfig> c = ParseCliConfig(yaml, "cfg.yaml");
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? c->coordinator : std::nullopt;
}

std::string ErrorOf(const std::string& yaml) {
  absl::StatusOr<CliConfig> c = ParseCliConfig(yaml, "/home/u/cfg.yaml");
  EXPECT_FALSE(c.ok()) << yaml;
  if (c.ok()) return "";
  EXPECT_EQ(c.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(c.status().message());
}

// Moved from client_test.cc (ParseConfigCoordinatorTest): comments and quoting
// as before; the "other: x" key it used to skip is now an error (below).
TEST(ParseCliConfigTest, ReadsTheCoordinatorKey) {
  EXPECT_EQ(Coordinator("coordinator: farm.example:7070\n"), "farm.example:7070");
  EXPECT_EQ(Coordinator("# musafarm\ncoordinator:  \"h:1\"  # main\n"), "h:1");
  EXPECT_EQ(Coordinator("coordinator: 'h:2'"), "h:2");
}

TEST(ParseCliConfigTest, AbsentOrEmptyIsNullopt) {
  EXPECT_EQ(Coordinator(""), std::nullopt);
  EXPECT_EQ(Coordinator("# coordinator: h:1\n"), std::nullopt);
  EXPECT_EQ(Coordinator("coordinator:\n"), std::nullopt);
  EXPECT_EQ(Coordinator("coordinator: ''\n"), std::nullopt);
  EXPECT_EQ(Coordinator("{}"), std::nullopt);
}

TEST(ParseCliConfigTest, ReadsFlowStyle) {
  EXPECT_EQ(Coordinator("{coordinator: x}"), "x");
  EXPECT_EQ(Coordinator("{coordinator: 'farm:7070'}\n"), "farm:7070");
  EXPECT_EQ(Coordinator("{ \"coordinator\" : \"h:3\" }  # flow\n"), "h:3");
}

TEST(ParseCliConfigTest, UnknownKeyNamesFileLineAndKey) {
  EXPECT_EQ(ErrorOf("# musafarm\ncoordinator: h:1\ncordinator: h:2\n"),
            "/home/u/cfg.yaml:3:1: cordinator: unknown field 'cordinator' (allowed: coordinator, "
            "ca, insecure, token)");
  EXPECT_THAT(ErrorOf("{coordinator: x, colour: red}"),
              StartsWith("/home/u/cfg.yaml:1:18: colour: unknown field 'colour'"));
}

TEST(ParseCliConfigTest, WrongTypeNamesFileAndKey) {
  EXPECT_EQ(ErrorOf("coordinator: [a, b]\n"),
            "/home/u/cfg.yaml:1:14: coordinator: expected a string, got a list");
  EXPECT_EQ(ErrorOf("coordinator:\n  host: a\n"),
            "/home/u/cfg.yaml:2:3: coordinator: expected a string, got a mapping");
}

TEST(ParseCliConfigTest, ATopLevelThatIsNotAMappingIsAnError) {
  EXPECT_THAT(ErrorOf("- coordinator: h:1\n"),
              StartsWith("/home/u/cfg.yaml:1:1: config: expected a mapping of keys"));
  EXPECT_THAT(ErrorOf("farm.example:7070\n"), HasSubstr("got a string"));
}

TEST(ParseCliConfigTest, MalformedYamlAndRepeatedKeysAreErrors) {
  EXPECT_THAT(ErrorOf("{coordinator: x\n"), StartsWith("/home/u/cfg.yaml:"));
  EXPECT_THAT(ErrorOf("coordinator: a\ncoordinator: b\n"),
              StartsWith("/home/u/cfg.yaml:2:1: coordinator: duplicate key"));
  EXPECT_THAT(ErrorOf("coordinator: a\n---\ncoordinator: b\n"),
              HasSubstr("config: the file holds 2 YAML documents"));
}

// yaml-cpp 0.7's LoadAll never returns on a file holding ",": the config is
// read through YamlReader::LoadDocument, which counts documents with a bound.
// "," holds no document: an empty config. (Before, this test never returned.)
TEST(ParseCliConfigTest, AFileOnWhichYamlCppLoadAllNeverReturnsIsReadAsEmpty) {
  absl::StatusOr<CliConfig> c = ParseCliConfig(",", "/home/u/cfg.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->coordinator.has_value());
}

// Moved from client_test.cc: saves and restores the environment variables that
// ResolveCoordinator reads.
class ResolveCoordinatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* name : {kCoordinatorEnv, kConfigEnv, kCaEnv, kTokenEnv, "HOME"}) {
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
  EXPECT_THAT(*ResolveCoordinator("flag:1"), ::testing::ElementsAre("flag:1"));
  EXPECT_THAT(*ResolveCoordinator(""), ::testing::ElementsAre("env:2"));
  unsetenv(kCoordinatorEnv);
  EXPECT_THAT(*ResolveCoordinator(""), ::testing::ElementsAre("config:3"));
  unsetenv(kConfigEnv);
  EXPECT_THAT(*ResolveCoordinator(""), ::testing::ElementsAre("127.0.0.1:7070"));
}

TEST_F(ResolveCoordinatorTest, EmptyEnvIsUnset) {
  setenv(kCoordinatorEnv, "", 1);
  EXPECT_THAT(*ResolveCoordinator(""), ::testing::ElementsAre(kDefaultCoordinator));
}

TEST_F(ResolveCoordinatorTest, ReadsTheConfigFileInHome) {
  WriteFile(home_ + "/.config/musafarm/config.yaml", "coordinator: home:4\n");
  EXPECT_THAT(*ResolveCoordinator(""), ::testing::ElementsAre("home:4"));
  // $MUSAFARM_CONFIG takes the place of the file in $HOME.
  const std::string cfg = WriteFile(home_ + "/other.yaml", "coordinator: other:5\n");
  setenv(kConfigEnv, cfg.c_str(), 1);
  EXPECT_THAT(*ResolveCoordinator(""), ::testing::ElementsAre("other:5"));
}

TEST_F(ResolveCoordinatorTest, ConfigWithoutTheKeyFallsBackToDefault) {
  WriteFile(home_ + "/.config/musafarm/config.yaml", "# nothing here\n");
  EXPECT_THAT(*ResolveCoordinator(""), ::testing::ElementsAre(kDefaultCoordinator));
}

TEST_F(ResolveCoordinatorTest, UnreadableExplicitConfigIsAnError) {
  setenv(kConfigEnv, (home_ + "/missing.yaml").c_str(), 1);
  absl::StatusOr<std::vector<std::string>> r = ResolveCoordinator("");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("missing.yaml"));
  // A flag needs no config file at all.
  EXPECT_THAT(*ResolveCoordinator("flag:1"), ::testing::ElementsAre("flag:1"));
}

TEST_F(ResolveCoordinatorTest, ABadConfigFileIsAnErrorNamingFileAndKey) {
  // The default file too: a typo there must not silently send the CLI to
  // 127.0.0.1:7070.
  const std::string home_cfg = home_ + "/.config/musafarm/config.yaml";
  WriteFile(home_cfg, "coordinater: farm:7070\n");
  absl::StatusOr<std::vector<std::string>> r = ResolveCoordinator("");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      r.status().message(),
      absl::StrCat(
          "bad config file: ", home_cfg,
          ":1:1: coordinater: unknown field 'coordinater' (allowed: coordinator, ca, insecure, "
          "token)"));
  // The flag and the environment still win without reading it.
  EXPECT_THAT(*ResolveCoordinator("flag:1"), ::testing::ElementsAre("flag:1"));
  setenv(kCoordinatorEnv, "env:2", 1);
  EXPECT_THAT(*ResolveCoordinator(""), ::testing::ElementsAre("env:2"));
}

TEST_F(ResolveCoordinatorTest, EverySourceTakesAListAndNamesABadEntry) {
  EXPECT_THAT(*ResolveCoordinator("a:1, b:2"), ::testing::ElementsAre("a:1", "b:2"));
  absl::StatusOr<std::vector<std::string>> r = ResolveCoordinator("a:1,b");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("--coordinator entry 2 'b': no port; expected HOST:PORT"));
  setenv(kCoordinatorEnv, "env:1,env:2", 1);
  EXPECT_THAT(*ResolveCoordinator(""), ::testing::ElementsAre("env:1", "env:2"));
  setenv(kCoordinatorEnv, "env:1,", 1);
  r = ResolveCoordinator("");
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("$MUSAFARM_COORDINATOR entry 2 is empty"));
  unsetenv(kCoordinatorEnv);
  const std::string cfg = WriteFile(home_ + "/ha.yaml", "coordinator: c1:7070,c2:7070\n");
  setenv(kConfigEnv, cfg.c_str(), 1);
  EXPECT_THAT(*ResolveCoordinator(""), ::testing::ElementsAre("c1:7070", "c2:7070"));
}

TEST_F(ResolveCoordinatorTest, ReadsAFlowStyleConfig) {
  const std::string cfg = WriteFile(home_ + "/flow.yaml", "{coordinator: flow:6}\n");
  setenv(kConfigEnv, cfg.c_str(), 1);
  EXPECT_THAT(*ResolveCoordinator(""), ::testing::ElementsAre("flow:6"));
}

constexpr char kPem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

TEST_F(ResolveCoordinatorTest, InsecureFromTheFlagOrTheConfigNeedsNoCa) {
  absl::StatusOr<std::optional<ChannelTls>> tls = ResolveTls(/*insecure_flag=*/true, "");
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_FALSE(tls->has_value());
  setenv(kConfigEnv, WriteFile(home_ + "/cfg.yaml", "insecure: true\n").c_str(), 1);
  tls = ResolveTls(false, "");
  ASSERT_TRUE(tls.ok()) << tls.status();
  EXPECT_FALSE(tls->has_value());
}

TEST_F(ResolveCoordinatorTest, TheCaComesFromFlagThenEnvThenConfigThenHome) {
  const std::string flag_ca = WriteFile(home_ + "/flag.crt", absl::StrCat(kPem, "flag"));
  const std::string env_ca = WriteFile(home_ + "/env.crt", absl::StrCat(kPem, "env"));
  const std::string cfg_ca = WriteFile(home_ + "/cfg.crt", absl::StrCat(kPem, "cfg"));
  WriteFile(home_ + "/.config/musafarm/ca.crt", absl::StrCat(kPem, "home"));
  setenv(kConfigEnv, WriteFile(home_ + "/cfg.yaml", absl::StrCat("ca: ", cfg_ca, "\n")).c_str(), 1);
  setenv(kCaEnv, env_ca.c_str(), 1);
  auto ca_of = [](const std::string& flag) {
    absl::StatusOr<std::optional<ChannelTls>> tls = ResolveTls(false, flag);
    EXPECT_TRUE(tls.ok()) << tls.status();
    return tls.ok() && tls->has_value() ? (*tls)->ca_pem : "";
  };
  EXPECT_EQ(ca_of(flag_ca), absl::StrCat(kPem, "flag"));
  EXPECT_EQ(ca_of(""), absl::StrCat(kPem, "env"));
  unsetenv(kCaEnv);
  EXPECT_EQ(ca_of(""), absl::StrCat(kPem, "cfg"));
  unsetenv(kConfigEnv);
  EXPECT_EQ(ca_of(""), absl::StrCat(kPem, "home"));
}

TEST_F(ResolveCoordinatorTest, WithoutACaOrInsecureItSaysWhatToDo) {
  absl::StatusOr<std::optional<ChannelTls>> tls = ResolveTls(false, "");
  ASSERT_FALSE(tls.ok());
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      std::string(tls.status().message()),
      AllOf(HasSubstr(absl::StrCat("no CA certificate at ", home_, "/.config/musafarm/ca.crt")),
            HasSubstr("--ca FILE"), HasSubstr("--insecure")));
  // A file that is not PEM is named too.
  tls = ResolveTls(false, WriteFile(home_ + "/junk.crt", "junk"));
  ASSERT_FALSE(tls.ok());
  EXPECT_THAT(std::string(tls.status().message()), HasSubstr("junk.crt holds no PEM data"));
}

TEST_F(ResolveCoordinatorTest, TheTokenComesFromTheEnvironmentThenTheConfig) {
  absl::StatusOr<ResolvedToken> t = ResolveToken();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->token, "");  // none anywhere: no token
  const std::string cfg = home_ + "/.config/musafarm/config.yaml";
  WriteFile(cfg, "token: mfu1.from.config\n");
  ASSERT_EQ(chmod(cfg.c_str(), 0600), 0);
  t = ResolveToken();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->token, "mfu1.from.config");
  EXPECT_EQ(t->warning, "");  // private: nothing to say
  setenv(kTokenEnv, "mfu1.from.env", 1);
  t = ResolveToken();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->token, "mfu1.from.env");
}

TEST_F(ResolveCoordinatorTest, AConfigFileOthersCanReadHoldingATokenIsWarnedAbout) {
  const std::string cfg = home_ + "/.config/musafarm/config.yaml";
  WriteFile(cfg, "token: mfu1.from.config\n");
  ASSERT_EQ(chmod(cfg.c_str(), 0644), 0);
  absl::StatusOr<ResolvedToken> t = ResolveToken();
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->token, "mfu1.from.config");
  EXPECT_THAT(t->warning, AllOf(HasSubstr(cfg), HasSubstr("readable by others"),
                                HasSubstr("0644"), HasSubstr("chmod 600")));
  EXPECT_THAT(t->warning, Not(HasSubstr("mfu1.from.config")));
  ASSERT_EQ(chmod(cfg.c_str(), 0640), 0);
  t = ResolveToken();
  ASSERT_TRUE(t.ok());
  EXPECT_THAT(t->warning, HasSubstr("readable by its group"));
  // A config without a token is no one's business.
  WriteFile(cfg, "coordinator: h:1\n");
  t = ResolveToken();
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->warning, "");
}

}  // namespace
}  // namespace musafarm::cli
