#include "cli/color.h"

#include <regex>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm::cli {
namespace {

std::string Plain(const std::string& s) {
  static const std::regex kSgr("\x1b\\[[0-9;]*m");
  return std::regex_replace(s, kSgr, "");
}

TEST(ColorTest, AutoColoursOnlyATerminalWithoutNoColor) {
  EXPECT_TRUE(UseColor("auto", /*tty=*/true, nullptr));
  EXPECT_FALSE(UseColor("auto", /*tty=*/false, nullptr));
  EXPECT_FALSE(UseColor("auto", true, "1"));
  EXPECT_FALSE(UseColor("auto", true, "no"));   // any value
  EXPECT_TRUE(UseColor("auto", true, ""));      // set but empty: as unset (no-color.org)
  EXPECT_TRUE(UseColor("always", false, "1"));  // the command line outranks NO_COLOR
  EXPECT_FALSE(UseColor("never", true, nullptr));
}

TEST(ColorTest, StatesGetTheirColoursOtherWordsStayAsTheyAre) {
  EXPECT_EQ(ColorState("failed"), "\x1b[1;31mfailed\x1b[0m");
  EXPECT_EQ(ColorState("succeeded"), "\x1b[32msucceeded\x1b[0m");
  EXPECT_EQ(ColorState("running"), "\x1b[33mrunning\x1b[0m");
  EXPECT_EQ(ColorState("hello"), "hello");
}

TEST(ColorTest, StateColumnIsColouredAndStaysAligned) {
  const std::vector<std::string> lines = {
      "job 7 (démo) failed in 3s",           "",
      "TASK        STATE      AGENT",        "dév/base    succeeded  h1",
      "dev/test    failed     h2",           "",
      "artifacts: 7/dev/test: failed (2 B)",
  };
  const std::vector<std::string> coloured = ColorStateColumn(lines);
  ASSERT_EQ(coloured.size(), lines.size());
  for (size_t i = 0; i < lines.size(); ++i) EXPECT_EQ(Plain(coloured[i]), lines[i]) << i;
  EXPECT_EQ(coloured[3], "dév/base    \x1b[32msucceeded\x1b[0m  h1");
  EXPECT_EQ(coloured[4], "dev/test    \x1b[1;31mfailed\x1b[0m     h2");
  // Outside the table nothing changes, a state word included.
  EXPECT_EQ(coloured[0], lines[0]);
  EXPECT_EQ(coloured[6], lines[6]);
  // `jobs`: ID NAME STATE ...
  EXPECT_EQ(ColorStateColumn({"ID  NAME  STATE", "7   a     running"})[1],
            "7   a     \x1b[33mrunning\x1b[0m");
}

}  // namespace
}  // namespace musafarm::cli
