#include "common/protocol_version.h"

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace musafarm {
namespace {

TEST(ProtocolVersionTest, AnAgentFromBeforeTheFieldIsVersionOne) {
  EXPECT_EQ(AgentProtocolVersion(0), 1u);
  EXPECT_EQ(AgentProtocolVersion(2), 2u);
  EXPECT_TRUE(CheckAgentProtocol(0).ok());
}

TEST(ProtocolVersionTest, ServesEveryVersionFromTheMinimumToItsOwn) {
  for (uint32_t v = kMinAgentProtocolVersion; v <= kProtocolVersion; ++v) {
    EXPECT_TRUE(CheckAgentProtocol(v).ok()) << v;
  }
}

TEST(ProtocolVersionTest, ANewerAgentIsRefusedNamingBothVersions) {
  const absl::Status s = CheckAgentProtocol(99);
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_EQ(s.message(),
            absl::StrCat("agent protocol 99 is not supported by this coordinator (protocol ",
                         kProtocolVersion, ", agents ", kMinAgentProtocolVersion, "..",
                         kProtocolVersion,
                         "); run an agent of this coordinator's release or upgrade the "
                         "coordinator"));
}

}  // namespace
}  // namespace musafarm
