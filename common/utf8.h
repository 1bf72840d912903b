#pragma once

#include <string>

#include "absl/strings/string_view.h"

namespace musafarm {

// Whether `s` is well-formed UTF-8 (no overlong forms, surrogates or code
// points past U+10FFFF): what protobuf requires of a proto3 `string` field.
bool IsValidUtf8(absl::string_view s);

// The offset of the first byte that starts no well-formed sequence, or npos.
size_t FirstInvalidUtf8(absl::string_view s);

// `s` with each byte that starts no well-formed sequence replaced by U+FFFD.
// Text that reaches a proto `string` from outside (test names in a tool's
// output, error texts with file names) goes through this: protobuf refuses to
// parse a message whose string field is not UTF-8, so one such byte would
// break the stream that carries it, again at every resend.
std::string CoerceUtf8(absl::string_view s);

}  // namespace musafarm
