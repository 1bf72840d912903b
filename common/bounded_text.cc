#include "common/bounded_text.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/utf8.h"

namespace musafarm {
namespace {

// C0 controls, DEL, and the C1 controls (U+0080..U+009F, UTF-8 C2 80..C2 9F),
// which some terminals also obey (CSI is U+009B).
size_t ControlAt(absl::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x20 || c == 0x7F) return 1;
  if (c == 0xC2 && i + 1 < s.size()) {
    const auto d = static_cast<unsigned char>(s[i + 1]);
    if (d >= 0x80 && d <= 0x9F) return 2;
  }
  return 0;
}

std::string Escape(absl::string_view control) {
  if (control.size() == 2) return absl::StrFormat("\\u%04x", static_cast<unsigned char>(control[1]));
  switch (control[0]) {
    case '\n':
      return "\\n";
    case '\t':
      return "\\t";
    case '\r':
      return "\\r";
    case '\x1b':
      return "\\e";
    default:
      return absl::StrFormat("\\x%02x", static_cast<unsigned char>(control[0]));
  }
}

}  // namespace

bool HasControl(absl::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    if (ControlAt(s, i) != 0) return true;
  }
  return false;
}

std::string Printable(absl::string_view s, size_t max_bytes) {
  const size_t total = s.size();
  const bool cut = total > max_bytes;
  if (cut) s = s.substr(0, max_bytes);
  std::string out;
  out.reserve(s.size() + 16);
  const std::string text = IsValidUtf8(s) ? std::string(s) : std::string();
  if (text.empty() && !s.empty()) {
    // Not UTF-8 (or cut inside a character): escape every byte past ASCII.
    for (char ch : s) {
      const auto c = static_cast<unsigned char>(ch);
      if (c >= 0x80 || c < 0x20 || c == 0x7F) {
        out += c < 0x80 ? Escape(absl::string_view(&ch, 1)) : absl::StrFormat("\\x%02x", c);
      } else {
        out += ch;
      }
    }
  } else {
    for (size_t i = 0; i < text.size();) {
      const size_t n = ControlAt(text, i);
      if (n == 0) {
        out += text[i++];
        continue;
      }
      out += Escape(absl::string_view(text).substr(i, n));
      i += n;
    }
  }
  if (cut) absl::StrAppend(&out, "...(", total, " bytes)");
  return out;
}

absl::Status CheckName(absl::string_view what, absl::string_view value, size_t max_bytes) {
  if (value.size() > max_bytes) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": is ", value.size(),
                                                   " bytes long; the limit is ", max_bytes,
                                                   " (starts '", Printable(value, 32), "')"));
  }
  if (!IsValidUtf8(value)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": '", Printable(value, 64), "' is not valid UTF-8"));
  }
  if (HasControl(value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": '", Printable(value, 64),
        "' holds a control character (newline, escape, ...); names must be printable"));
  }
  return absl::OkStatus();
}

}  // namespace musafarm
