// End-to-end tests of the coordinator's port security (issue 10, point 1):
// TLS by default, plaintext only with --insecure on each binary. The real
// coordinator, agents and CLI on loopback.
#include <stdlib.h>

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

using ::absl::StrContains;

// Runs `argv` to its exit; returns the exit code, its output in `*output`.
int RunToExit(const std::vector<std::string>& argv, const std::string& log, std::string* output) {
  auto p = Process::Start(argv, log);
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return -1;
  const int code = (*p)->Wait(absl::Seconds(30));
  *output = (*p)->Output();
  return code;
}

// Without --insecure and without TLS material, each binary exits 2 naming
// the file it lacks and how to make it; the coordinator creates nothing.
TEST(TlsFlagsTest, WithoutInsecureOrTlsMaterialEachBinaryExitsTwoSayingWhatToDo) {
  Farm farm;
  const std::string data = farm.dir() + "/coordinator";
  std::string out;
  EXPECT_EQ(RunToExit({MF_COORDINATOR_BIN, "--listen", "127.0.0.1:0", "--data-dir", data},
                      farm.dir() + "/coordinator.log", &out),
            2)
      << out;
  EXPECT_TRUE(StrContains(out, absl::StrCat("no TLS certificate at ", data, "/pki/server.crt: ",
                                            "run `musafarm-coordinator ca init --data-dir ", data,
                                            "`, or pass --insecure for plaintext")))
      << out;
  EXPECT_FALSE(std::filesystem::exists(data));

  const std::string work = farm.dir() + "/agent-a";
  EXPECT_EQ(RunToExit({MF_AGENT_BIN, "--coordinator", "127.0.0.1:1", "--name", "a", "--work-dir",
                       work, "--no-gpu-detect"},
                      farm.dir() + "/agent.log", &out),
            2)
      << out;
  EXPECT_TRUE(StrContains(out, absl::StrCat("no agent certificate at ", work, "/pki/agent.crt")))
      << out;
  EXPECT_TRUE(StrContains(out, "or pass --insecure for plaintext")) << out;

  // The CLI's default CA is ~/.config/musafarm/ca.crt: a HOME without one.
  const std::string home = farm.dir() + "/home";
  std::filesystem::create_directories(home);
  ASSERT_EQ(::setenv("HOME", home.c_str(), 1), 0);
  ::unsetenv("MUSAFARM_CA");
  ::unsetenv("MUSAFARM_CONFIG");
  EXPECT_EQ(RunToExit({MF_CLI_BIN, "--coordinator", "127.0.0.1:1", "jobs"}, farm.dir() + "/cli.log",
                      &out),
            2)
      << out;
  EXPECT_TRUE(StrContains(
      out, absl::StrCat("musafarm: no CA certificate at ", home, "/.config/musafarm/ca.crt")))
      << out;
  EXPECT_TRUE(StrContains(out, "pass --insecure for a coordinator run with --insecure")) << out;
}

// --insecure: the coordinator says at start that agents are not
// authenticated, and so does `musafarm agents`.
TEST(TlsFlagsTest, AnInsecureCoordinatorWarnsAtStartAndInTheAgentList) {
  Farm farm;  // --insecure by default
  farm.StartCoordinator();
  farm.StartAgent("a", {}, 1);
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; })) << "agent did not register";
  EXPECT_TRUE(StrContains(farm.coordinator()->Output(),
                          " W [coordinator] listening on port " + std::to_string(farm.port()) +
                              " in PLAINTEXT (--insecure): agents are not authenticated"))
      << farm.coordinator()->Output();
  CliResult table = farm.Cli({"agents"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_TRUE(StrContains(table.out,
                          "--insecure: agent names are as the agents declared them, "
                          "not authenticated"))
      << table.out;
  CliResult json = farm.Cli({"agents", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json parsed = nlohmann::json::parse(json.out, nullptr, false);
  EXPECT_EQ(parsed["insecure"], true) << json.out;
  EXPECT_EQ(parsed["agents"][0]["authentication"], "none") << json.out;
}

}  // namespace
}  // namespace musafarm::e2e
