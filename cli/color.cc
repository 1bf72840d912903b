#include "cli/color.h"

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace musafarm::cli {
namespace {

// SGR parameters by state name: red for failures, green for success, yellow
// for work under way, dim for what waits or was skipped.
const char* StateSgr(absl::string_view state) {
  if (state == "succeeded") return "32";
  if (state == "failed" || state == "timed_out") return "1;31";
  if (state == "cancelled") return "35";
  if (state == "running" || state == "assigned") return "33";
  if (state == "queued" || state == "pending" || state == "skipped") return "2";
  return nullptr;
}

// Byte offset where display column `col` (in code points, as RenderTable
// counts) starts in `line`; nullopt when the line is shorter.
std::optional<size_t> ByteAtColumn(absl::string_view line, size_t col) {
  size_t cps = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    if ((static_cast<unsigned char>(line[i]) & 0xC0) == 0x80) continue;
    if (cps == col) return i;
    ++cps;
  }
  return std::nullopt;
}

// The display column of the STATE header in a table header line, if it is one.
std::optional<size_t> StateColumn(absl::string_view line) {
  if (!absl::StartsWith(line, "TASK ") && !absl::StartsWith(line, "ID ")) return std::nullopt;
  const size_t at = line.find("  STATE");
  if (at == absl::string_view::npos) return std::nullopt;
  const size_t end = at + 7;
  if (end != line.size() && line[end] != ' ') return std::nullopt;
  return at + 2;  // header lines are ASCII: bytes are columns
}

}  // namespace

bool UseColor(absl::string_view mode, bool tty, const char* no_color) {
  if (mode == "always") return true;
  if (mode == "never") return false;
  return tty && (no_color == nullptr || *no_color == '\0');
}

std::string ColorState(absl::string_view state) {
  const char* sgr = StateSgr(state);
  if (sgr == nullptr) return std::string(state);
  return absl::StrCat("\x1b[", sgr, "m", state, "\x1b[0m");
}

std::vector<std::string> ColorStateColumn(std::vector<std::string> lines) {
  std::optional<size_t> col;
  for (std::string& line : lines) {
    if (line.empty()) {
      col.reset();
      continue;
    }
    if (std::optional<size_t> header = StateColumn(line); header.has_value()) {
      col = header;
      continue;
    }
    if (!col.has_value()) continue;
    std::optional<size_t> start = ByteAtColumn(line, *col);
    if (!start.has_value()) continue;
    size_t end = line.find(' ', *start);
    if (end == std::string::npos) end = line.size();
    const std::string word = line.substr(*start, end - *start);
    line.replace(*start, end - *start, ColorState(word));
  }
  return lines;
}

}  // namespace musafarm::cli
