#include "common/address.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace musafarm {
namespace {

using ::testing::HasSubstr;

std::string Why(const std::string& address, bool allow_zero = false) {
  absl::Status s = ValidateAddress("--coordinator", address, allow_zero);
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << address << ": " << s;
  return std::string(s.message());
}

TEST(AddressTest, AcceptsHostPortForms) {
  for (const char* ok : {"127.0.0.1:7070", "localhost:1", "farm-1.example.org:65535", "[::1]:7070",
                         "dns:///coord.local:7070", "unix:/run/musafarm.sock",
                         "unix:///run/musafarm.sock"}) {
    EXPECT_TRUE(ValidateAddress("--coordinator", ok).ok()) << ok;
  }
  EXPECT_TRUE(ValidateAddress("--listen", "127.0.0.1:0", /*allow_port_zero=*/true).ok());
}

TEST(AddressTest, RefusesWhatGrpcWouldMisread) {
  EXPECT_THAT(Why("127.0.0.1:99999"), HasSubstr("port 99999 is out of range (1-65535)"));
  EXPECT_THAT(Why("127.0.0.1:0"), HasSubstr("out of range (1-65535)"));
  EXPECT_THAT(Why("127.0.0.1:99999", true), HasSubstr("out of range (0-65535)"));
  EXPECT_THAT(Why("127.0.0.1"), HasSubstr("'127.0.0.1': no port; expected HOST:PORT"));
  EXPECT_THAT(Why("127.0.0.1:"), HasSubstr("no port after ':'"));
  EXPECT_THAT(Why(":7070"), HasSubstr("no host"));
  EXPECT_THAT(Why("host:70x"), HasSubstr("port '70x' is not a number"));
  EXPECT_THAT(Why("::1:7070"), HasSubstr("needs brackets"));
  EXPECT_THAT(Why("[::1]"), HasSubstr("no port"));
  EXPECT_THAT(Why("[::1"), HasSubstr("without ']'"));
  EXPECT_THAT(Why("ho st:1"), HasSubstr("the host may hold only"));
  EXPECT_THAT(Why(""), HasSubstr("empty"));
  EXPECT_THAT(Why("a\x1b[2J:1"), HasSubstr("'a\\e[2J:1'"));
  EXPECT_THAT(Why("host:000000000080"), HasSubstr("out of range"));
}

TEST(AddressListTest, SplitsTrimsAndDropsRepeats) {
  absl::StatusOr<std::vector<std::string>> list =
      ParseAddressList("--coordinator", " a.example:7070, [::1]:7071 ,a.example:7070,b:1");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(*list, ::testing::ElementsAre("a.example:7070", "[::1]:7071", "b:1"));
  list = ParseAddressList("--coordinator", "127.0.0.1:7070");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(*list, ::testing::ElementsAre("127.0.0.1:7070"));
}

TEST(AddressListTest, NamesTheBadEntry) {
  absl::StatusOr<std::vector<std::string>> list = ParseAddressList("--coordinator", "a:1,b:x");
  ASSERT_TRUE(absl::IsInvalidArgument(list.status()));
  EXPECT_THAT(list.status().message(),
              HasSubstr("--coordinator entry 2 'b:x': port 'x' is not a number"));
  list = ParseAddressList("$MUSAFARM_COORDINATOR", "a:1,,b:1");
  EXPECT_THAT(list.status().message(), HasSubstr("$MUSAFARM_COORDINATOR entry 2 is empty"));
  list = ParseAddressList("--coordinator", " ");
  EXPECT_THAT(list.status().message(), HasSubstr("--coordinator: empty"));
  // One address: the message is the one ValidateAddress always gave.
  list = ParseAddressList("--coordinator", "127.0.0.1");
  EXPECT_THAT(list.status().message(), HasSubstr("--coordinator '127.0.0.1': no port"));
}

}  // namespace
}  // namespace musafarm
