#include "common/logging.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Issue 12: a name with ESC and newlines was written raw to the logs.
TEST(LoggingTest, ControlCharactersInAMessageAreEscaped) {
  auto log = GetLogger("logging_test");
  ::testing::internal::CaptureStderr();
  log->warn("refusing agent '{}'", "evil\x1b[2J\nINFO forged line");
  log->flush();
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, HasSubstr("refusing agent 'evil\\e[2J\\nINFO forged line'\n"));
  EXPECT_THAT(out, Not(HasSubstr("\x1b")));
  EXPECT_EQ(out.find('\n'), out.size() - 1) << "one line: " << out;
}

}  // namespace
}  // namespace musafarm
