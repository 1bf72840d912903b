#pragma once

// Colour for people at a terminal: job and task states in tables (`status`,
// `jobs`, `watch`) and watch's task lines. Never on by itself when stdout is
// not a terminal, and off with NO_COLOR (https://no-color.org).

#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace musafarm::cli {

// Whether to colour, from --color `mode`: "always", "never", or "auto" (also
// anything else): only when stdout is a terminal (`tty`) and `no_color`, the
// value of $NO_COLOR (nullptr: unset), is unset or empty. --color always
// outranks NO_COLOR, as no-color.org asks of a per-command setting.
bool UseColor(absl::string_view mode, bool tty, const char* no_color);

// `state` ("failed", "running", "succeeded", ...) in its colour (ANSI SGR,
// reset after it); a word that is no job or task state as it is.
std::string ColorState(absl::string_view state);

// Colours the cells under each "STATE" header of tables whose header starts
// with ID or TASK (RenderTable, cli/render.h), down to the table's end (an
// empty line or the end). The columns stay aligned: only escape codes are added.
std::vector<std::string> ColorStateColumn(std::vector<std::string> lines);

}  // namespace musafarm::cli
