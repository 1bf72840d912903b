#include "common/env_name.h"

#include "gtest/gtest.h"

namespace musafarm {
namespace {

TEST(IsEnvNameTest, LettersDigitsUnderscoreNotLeadingDigit) {
  for (const char* ok : {"A", "_", "MUSA_TOOLKITS_URL", "x1", "_9"}) {
    EXPECT_TRUE(IsEnvName(ok)) << ok;
  }
  for (const char* bad : {"", "1A", "A-B", "A B", "A=B", "é", "A.B"}) {
    EXPECT_FALSE(IsEnvName(bad)) << bad;
  }
}

}  // namespace
}  // namespace musafarm
