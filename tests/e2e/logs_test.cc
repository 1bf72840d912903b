// Operators' logs (issue 16, item 6) through the real binaries: with
// --log-format json every line the coordinator and the agent write to stderr
// is one JSON object with time, level, logger and msg; journald prefixes each
// line with its priority.
#include <signal.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/e2e/harness.h"

namespace musafarm::e2e {
namespace {

// Every line of `output` parsed; a line that does not parse fails the test.
std::vector<nlohmann::json> JsonLines(const std::string& output, const std::string& who) {
  std::vector<nlohmann::json> lines;
  for (absl::string_view line : absl::StrSplit(output, '\n', absl::SkipEmpty())) {
    nlohmann::json j = nlohmann::json::parse(line.begin(), line.end(), nullptr,
                                             /*allow_exceptions=*/false);
    EXPECT_FALSE(j.is_discarded()) << who << ": not JSON: " << line;
    if (j.is_discarded()) continue;
    EXPECT_TRUE(j.is_object()) << line;
    for (const char* key : {"time", "level", "logger", "msg"}) {
      EXPECT_TRUE(j.contains(key) && j[key].is_string()) << who << ": no " << key << ": " << line;
    }
    lines.push_back(std::move(j));
  }
  return lines;
}

TEST(LogsTest, JsonLogLinesEachParseOnCoordinatorAndAgent) {
  Farm farm;
  farm.StartCoordinator({"--log-format", "json"});
  Process* agent = farm.StartAgent("agent-1", {}, 1, {"--log-format", "json"});
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().size() == 1; })) << "agent did not register";
  // A job name with quotes and a backslash: logged at submit.
  const std::string id = farm.Submit(farm.WritePipeline(
      "quotes.yaml", R"(name: 'say "hi" \ now'
stages:
  - name: s
    shell: "echo ok"
)"));
  ASSERT_TRUE(farm.WaitForJobEnd(id, absl::Seconds(60)));
  agent->Signal(SIGTERM);
  EXPECT_EQ(agent->Wait(absl::Seconds(60)), 0) << agent->Output();
  farm.StopCoordinator(SIGTERM);

  const std::vector<nlohmann::json> coordinator =
      JsonLines(farm.coordinator()->Output(), "coordinator");
  bool submitted = false;
  for (const nlohmann::json& j : coordinator) {
    const std::string msg = j["msg"];
    submitted = submitted || absl::StrContains(msg, R"('say "hi" \ now')");
  }
  EXPECT_TRUE(submitted) << farm.coordinator()->Output();
  EXPECT_GT(coordinator.size(), 3u);
  const std::vector<nlohmann::json> agent_lines = JsonLines(agent->Output(), "agent");
  bool registered = false;
  for (const nlohmann::json& j : agent_lines) {
    registered = registered || (j["logger"] == "agent" && j["level"] == "info" &&
                                absl::StrContains(std::string(j["msg"]), "registered with"));
  }
  EXPECT_TRUE(registered) << agent->Output();
}

TEST(LogsTest, JournaldLinesCarryTheirPriority) {
  Farm farm;
  farm.StartCoordinator({"--log-format", "journald"});
  ASSERT_TRUE(WaitFor([&] { return farm.Agents().empty(); }));
  farm.StopCoordinator(SIGTERM);
  const std::string out = farm.coordinator()->Output();
  int lines = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    ++lines;
    EXPECT_TRUE(absl::StartsWith(line, "<6>[") || absl::StartsWith(line, "<4>[") ||
                absl::StartsWith(line, "<7>[") || absl::StartsWith(line, "<3>["))
        << line;
  }
  EXPECT_GT(lines, 0);
}

TEST(LogsTest, AnUnknownLogFormatIsRefused) {
  std::string out;
  const int rc = RunToExit({MF_COORDINATOR_BIN, "--log-format", "xml", "--insecure"},
                           ::testing::TempDir() + "/bad-format.log", &out);
  EXPECT_EQ(rc, 2) << out;
  EXPECT_TRUE(absl::StrContains(out, "--log-format")) << out;
}

}  // namespace
}  // namespace musafarm::e2e
