#include "common/log_formatters.h"

#include <sys/stat.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "spdlog/details/log_msg.h"

namespace musafarm {
namespace {

std::string Format(LogFormat format, spdlog::level::level_enum level, absl::string_view text) {
  spdlog::details::log_msg msg(std::chrono::system_clock::time_point(std::chrono::milliseconds(
                                   1'764'669'601'500)),  // 2025-12-02T10:00:01.500Z
                               spdlog::source_loc{}, "core", level,
                               spdlog::string_view_t(text.data(), text.size()));
  spdlog::memory_buf_t buf;
  MakeLogFormatter(format)->format(msg, buf);
  return std::string(buf.data(), buf.size());
}

TEST(JsonQuoteTest, QuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonQuote("plain"), "\"plain\"");
  EXPECT_EQ(JsonQuote("say \"hi\" \\ bye"), R"("say \"hi\" \\ bye")");
  EXPECT_EQ(JsonQuote("a\nb\r\tc"), R"("a\nb\r\tc")");
  EXPECT_EQ(JsonQuote(absl::string_view("\x1b[2J\x00\x7f", 6)), R"("\u001b[2J\u0000\u007f")");
}

TEST(JsonQuoteTest, KeepsUtf8AndReplacesInvalidBytes) {
  EXPECT_EQ(JsonQuote("größe ✓"), "\"größe ✓\"");
  // A lone continuation byte and a truncated sequence: one U+FFFD each byte.
  EXPECT_EQ(JsonQuote("a\x80z\xe2\x9c"), "\"a\xEF\xBF\xBDz\xEF\xBF\xBD\xEF\xBF\xBD\"");
}

TEST(LogFormatterTest, JsonIsOneObjectPerLine) {
  EXPECT_EQ(Format(LogFormat::kJson, spdlog::level::warn, "agent=\"a1\"\nsecond line"),
            "{\"time\":\"2025-12-02T10:00:01.500Z\",\"level\":\"warn\",\"logger\":\"core\","
            "\"msg\":\"agent=\\\"a1\\\"\\nsecond line\"}\n");
  EXPECT_TRUE(absl::StrContains(Format(LogFormat::kJson, spdlog::level::err, "x"),
                                "\"level\":\"error\""));
}

TEST(LogFormatterTest, JournaldPrefixesThePriority) {
  EXPECT_EQ(Format(LogFormat::kJournald, spdlog::level::info, "ready"), "<6>[core] ready\n");
  EXPECT_EQ(Format(LogFormat::kJournald, spdlog::level::warn, "w"), "<4>[core] w\n");
  EXPECT_EQ(Format(LogFormat::kJournald, spdlog::level::err, "e"), "<3>[core] e\n");
  EXPECT_EQ(Format(LogFormat::kJournald, spdlog::level::debug, "d"), "<7>[core] d\n");
  // A message cannot start a line of its own (and so forge a priority).
  EXPECT_EQ(Format(LogFormat::kJournald, spdlog::level::info, "a\n<3>forged"),
            "<6>[core] a\\n<3>forged\n");
}

TEST(LogFormatterTest, TextKeepsItsPattern) {
  const std::string line = Format(LogFormat::kText, spdlog::level::info, "hello\x1b");
  EXPECT_TRUE(absl::EndsWith(line, " I [core] hello\\e\n")) << line;
}

TEST(LogFormatTest, ParsesTheThreeNames) {
  EXPECT_EQ(*ParseLogFormat("text"), LogFormat::kText);
  EXPECT_EQ(*ParseLogFormat("json"), LogFormat::kJson);
  EXPECT_EQ(*ParseLogFormat("journald"), LogFormat::kJournald);
  absl::StatusOr<LogFormat> bad = ParseLogFormat("xml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(), "--log-format: 'xml' is not one of text, json, journald");
}

TEST(LogFormatTest, JournaldByDefaultOnlyWhenStderrIsTheJournalStream) {
  EXPECT_EQ(DefaultLogFormat(nullptr), LogFormat::kText);
  EXPECT_EQ(DefaultLogFormat("garbage"), LogFormat::kText);
  struct stat st = {};
  ASSERT_EQ(::fstat(2, &st), 0);
  const std::string mine = absl::StrCat(st.st_dev, ":", st.st_ino);
  EXPECT_EQ(DefaultLogFormat(mine.c_str()), LogFormat::kJournald);
  const std::string other = absl::StrCat(st.st_dev, ":", st.st_ino + 1);
  EXPECT_EQ(DefaultLogFormat(other.c_str()), LogFormat::kText);
}

}  // namespace
}  // namespace musafarm
