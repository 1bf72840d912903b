#pragma once

#include <google/protobuf/message.h>

#include <memory>
#include <string>
#include <vector>

namespace musafarm::wire {

// One recorded message. `name` is "<MessageType>.<variant>", e.g.
// "AgentMessage.result"; the golden files are tests/wire/golden/<name>.bin (the
// binary encoding) and <name>.txtpb (the same message as text, for humans and
// for the field-value comparison in wire_compat_test).
struct Golden {
  std::string name;
  std::unique_ptr<google::protobuf::Message> message;
};

// Representative messages of every kind that crosses the wire: AgentMessage
// and CoordinatorMessage with each oneof kind (an Assignment of each stage
// kind), WatchEvent with each kind, and every request and response of the user
// API, with their fields set. They are built with the frozen pre-change
// definitions (musafarm.v1old), so the files they produce never change:
// regenerating them (wire_golden_gen) reproduces what is committed, which
// wire_compat_test checks.
std::vector<Golden> OldGoldenMessages();

// The binary encoding written to a .bin file: deterministic, so map fields
// come out in key order and the files are reproducible.
std::string DeterministicBytes(const google::protobuf::Message& m);

// The text written to a .txtpb file: a "# proto-message:" header naming the
// type, then the message in protobuf text format.
std::string GoldenText(const google::protobuf::Message& m);

}  // namespace musafarm::wire
