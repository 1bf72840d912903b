// Agent-message validation (coordinator/agent_messages.h) on arbitrary bytes
// as an agent stream would deliver them: bytes that do not decode are the
// transport's to refuse; a decoded message is either accepted or refused with
// InvalidArgument whose text is short and printable (it is logged and sent
// back, so it must not carry a 15 MB name or an agent's escape sequences).
#include <cstdint>
#include <string>

#include "coordinator/agent_messages.h"
#include "musafarm/v1/agent_service.pb.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr size_t kMaxErrorText = 4096;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  musafarm::v1::AgentMessage msg;
  if (!msg.ParseFromArray(data, static_cast<int>(size))) return 0;
  const absl::Status s = musafarm::coordinator::ValidateAgentMessage(msg);
  if (s.ok()) {
    MF_FUZZ_CHECK(msg.kind_case() != musafarm::v1::AgentMessage::KIND_NOT_SET, "%s",
                  "a message with no kind was accepted");
    return 0;
  }
  const std::string text(s.message());
  MF_FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument, "code %d: %s",
                static_cast<int>(s.code()), text.c_str());
  MF_FUZZ_CHECK(!text.empty() && text.size() <= kMaxErrorText, "error text of %zu bytes",
                text.size());
  for (unsigned char c : text) {
    MF_FUZZ_CHECK(c >= 0x20 && c != 0x7f, "control byte 0x%02x in the error text", c);
  }
  return 0;
}
