#include "common/utf8.h"

#include <string>

#include "gtest/gtest.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm {
namespace {

TEST(Utf8Test, WellFormedTextIsKept) {
  for (const std::string& s : {std::string(""), std::string("plain ascii"),
                              std::string("caf\xC3\xA9 \xE4\xB8\xAD \xF0\x9F\x98\x80"),
                              std::string("\xEF\xBF\xBF")}) {
    EXPECT_TRUE(IsValidUtf8(s)) << s;
    EXPECT_EQ(CoerceUtf8(s), s);
  }
}

TEST(Utf8Test, EachBadByteBecomesOneReplacementCharacter) {
  const std::string fffd = "\xEF\xBF\xBD";
  struct Case {
    std::string in, want;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"a\xFF" "b", "a" + fffd + "b"},                          // never a lead byte
           {"\xC3", fffd},                                            // truncated at the end
           {"\xC3(", fffd + "("},                                     // bad continuation
           {"\xC0\xAF", fffd + fffd},                                 // overlong '/'
           {"\xED\xA0\x80", fffd + fffd + fffd},                      // a surrogate
           {"\xF4\x90\x80\x80", fffd + fffd + fffd + fffd},           // past U+10FFFF
           {"x\xE4\xB8\xAD\x80y", "x\xE4\xB8\xAD" + fffd + "y"},      // stray continuation
       }) {
    EXPECT_FALSE(IsValidUtf8(c.in));
    EXPECT_EQ(CoerceUtf8(c.in), c.want);
    EXPECT_TRUE(IsValidUtf8(CoerceUtf8(c.in)));
  }
}

// Why it matters: a proto3 string that is not UTF-8 makes the whole message
// unparsable on the other side.
TEST(Utf8Test, ProtobufRefusesWhatCoerceRepairs) {
  v1::TestCounts bad;
  bad.add_failed_tests("tests/t.py::test_\xFF");
  v1::TestCounts back;
  EXPECT_FALSE(back.ParseFromString(bad.SerializeAsString()));
  v1::TestCounts good;
  good.add_failed_tests(CoerceUtf8("tests/t.py::test_\xFF"));
  ASSERT_TRUE(back.ParseFromString(good.SerializeAsString()));
  EXPECT_EQ(back.failed_tests(0), "tests/t.py::test_\xEF\xBF\xBD");
}

}  // namespace
}  // namespace musafarm
