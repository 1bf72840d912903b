#include "common/address.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/bounded_text.h"

namespace musafarm {
namespace {

bool IsHostChar(char c) { return absl::ascii_isalnum(c) || c == '.' || c == '-' || c == '_'; }

}  // namespace

absl::Status ValidateAddress(absl::string_view what, absl::string_view address,
                             bool allow_port_zero) {
  auto bad = [&](absl::string_view why) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " '", Printable(address, 64), "': ", why));
  };
  if (absl::StartsWith(address, "unix:")) {
    if (address.size() == 5) return bad("no socket path after unix:");
    return absl::OkStatus();
  }
  absl::string_view rest = address;
  absl::ConsumePrefix(&rest, "dns:///");
  if (rest.empty()) return bad("empty; expected HOST:PORT");
  absl::string_view host, port;
  if (rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == absl::string_view::npos) return bad("'[' without ']'; expected [IPV6]:PORT");
    host = rest.substr(1, close - 1);
    if (host.empty()) return bad("empty host in []");
    for (char c : host) {
      if (!absl::ascii_isxdigit(c) && c != ':' && c != '.' && c != '%') {
        return bad("not an IPv6 address inside []");
      }
    }
    rest.remove_prefix(close + 1);
    if (rest.empty()) return bad("no port; expected [IPV6]:PORT");
    if (rest.front() != ':') return bad("expected ':' and a port after ']'");
    port = rest.substr(1);
  } else {
    const size_t colon = rest.rfind(':');
    if (colon == absl::string_view::npos) return bad("no port; expected HOST:PORT");
    host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
    if (host.empty()) return bad("no host; expected HOST:PORT");
    if (absl::StrContains(host, ':')) return bad("an IPv6 address needs brackets: [IPV6]:PORT");
    for (char c : host) {
      if (!IsHostChar(c)) return bad("the host may hold only letters, digits, '.', '-' and '_'");
    }
  }
  if (port.empty()) return bad("no port after ':'");
  for (char c : port) {
    if (!absl::ascii_isdigit(c)) return bad(absl::StrCat("port '", Printable(port, 16), "' is not a number"));
  }
  uint32_t n = 0;
  const int min = allow_port_zero ? 0 : 1;
  if (port.size() > 5 || !absl::SimpleAtoi(port, &n) || n > 65535 || static_cast<int>(n) < min) {
    return bad(absl::StrCat("port ", Printable(port, 16), " is out of range (", min, "-65535)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> ParseAddressList(absl::string_view what,
                                                          absl::string_view list) {
  std::vector<std::string> out;
  if (absl::StripAsciiWhitespace(list).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": empty; expected HOST:PORT[,HOST:PORT...]"));
  }
  const std::vector<absl::string_view> entries = absl::StrSplit(list, ',');
  for (size_t i = 0; i < entries.size(); ++i) {
    const absl::string_view entry = absl::StripAsciiWhitespace(entries[i]);
    // One address keeps the old message ("--coordinator 'x': ..."); in a
    // list the entry's position says which one is wrong.
    const std::string name = entries.size() == 1 ? std::string(what)
                                                 : absl::StrCat(what, " entry ", i + 1);
    if (entry.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, " is empty (two commas, or one at an end?)"));
    }
    if (absl::Status s = ValidateAddress(name, entry); !s.ok()) return s;
    if (std::find(out.begin(), out.end(), entry) == out.end()) out.emplace_back(entry);
  }
  return out;
}

}  // namespace musafarm
