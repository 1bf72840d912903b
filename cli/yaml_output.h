#pragma once

// `-o yaml`: the same values as `-o json` (cli/json.h), written by yaml-cpp's
// emitter. One converter, so that both formats say the same thing.

#include <string>

#include "cli/json.h"

namespace musafarm::cli {

// `json` as one YAML document that starts with "---" and ends with a newline.
// Strings that YAML would read as something else (true, null, 12, 1e3, "")
// are quoted, so every value reads back with its JSON type; text that is not
// UTF-8 becomes U+FFFD, as in DumpJson.
std::string JsonToYaml(const Json& json);

}  // namespace musafarm::cli
