#pragma once

#include <cstddef>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace musafarm {

// A name or label from outside (a pipeline file, a CLI flag, an agent's
// register): at most `max_bytes`, valid UTF-8, and no control characters (C0,
// DEL, C1), so that printing it can neither move a terminal's cursor nor
// start a new log line. InvalidArgument otherwise, saying which rule and
// where: "`what`: ...". The value itself is quoted only when short, and then
// through Printable.
absl::Status CheckName(absl::string_view what, absl::string_view value, size_t max_bytes);

// `s` safe for a terminal or a log line: control characters as \n, \t, \r,
// \e, \xHH (C0, DEL) or \uHHHH (C1); when `s` is not UTF-8, every byte past
// ASCII as \xHH. Text longer than `max_bytes` is cut and ends in
// "...(N bytes)", so one huge name cannot flood a log.
std::string Printable(absl::string_view s, size_t max_bytes = 256);

// Whether `s` holds any control character that Printable would escape.
bool HasControl(absl::string_view s);

}  // namespace musafarm
