#include "common/bounded_text.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm {
namespace {

using ::testing::HasSubstr;

TEST(PrintableTest, EscapesControlCharactersAndCutsLongText) {
  EXPECT_EQ(Printable("plain name"), "plain name");
  EXPECT_EQ(Printable("a\x1b[31mred\nb\tc\r\x7f"), "a\\e[31mred\\nb\\tc\\r\\x7f");
  EXPECT_EQ(Printable("csi\xc2\x9b" "2J"), "csi\\u009b2J");
  EXPECT_EQ(Printable("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 text stays
  EXPECT_EQ(Printable("bad\xff\x1b"), "bad\\xff\\e");
  EXPECT_EQ(Printable(std::string(1000, 'x'), 10), "xxxxxxxxxx...(1000 bytes)");
}

TEST(CheckNameTest, RefusesLongControlAndNonUtf8) {
  EXPECT_TRUE(CheckName("stage name", "build-1", 128).ok());
  absl::Status s = CheckName("stage name", std::string(5000, 'n'), 128);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("stage name: is 5000 bytes long; the limit is 128"));
  s = CheckName("agent name", "evil\x1b]0;title\x07", 128);
  EXPECT_THAT(s.message(), HasSubstr("agent name: 'evil\\e]0;title\\x07' holds a control character"));
  s = CheckName("label", "a\nb", 128);
  EXPECT_THAT(s.message(), HasSubstr("'a\\nb' holds a control character"));
  s = CheckName("label", "a\xff", 128);
  EXPECT_THAT(s.message(), HasSubstr("is not valid UTF-8"));
}

}  // namespace
}  // namespace musafarm
