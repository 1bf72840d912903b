#include "common/protocol_version.h"

#include "absl/strings/str_cat.h"

namespace musafarm {

uint32_t AgentProtocolVersion(uint32_t announced) { return announced == 0 ? 1 : announced; }

absl::Status CheckAgentProtocol(uint32_t announced) {
  const uint32_t v = AgentProtocolVersion(announced);
  if (v >= kMinAgentProtocolVersion && v <= kProtocolVersion) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "agent protocol ", v, " is not supported by this coordinator (protocol ", kProtocolVersion,
      ", agents ", kMinAgentProtocolVersion, "..", kProtocolVersion, "); run an agent of ",
      v > kProtocolVersion ? "this coordinator's release or upgrade the coordinator"
                           : "a newer release"));
}

}  // namespace musafarm
