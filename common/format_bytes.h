#pragma once

#include <cstdint>
#include <string>

namespace musafarm {

// "512 B", "4 KiB", "1.5 MiB", "12 GiB": binary units, one decimal below 10
// and none from 10 up or when it would read ".0". One function for the CLI's
// tables and the agent's disk messages, so a size reads the same in
// `musafarm agents` (an agent's low-disk reason) and beside it.
std::string FormatBytes(uint64_t bytes);

}  // namespace musafarm
