#include "common/secret_forms.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace musafarm {
namespace {

bool IsUnreserved(char c) {
  return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
         c == '~';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void AddEncodings(absl::string_view v, std::vector<std::string>* out) {
  for (bool upper : {true, false}) {
    out->push_back(PercentEncode(v, upper));
    out->push_back(PercentEncode(v, upper, "/"));
    out->push_back(PercentEncode(v, upper, "", /*space_plus=*/true));
  }
}

// The characters of base64(x + value + y) that `value` alone decides, for each
// of the three alignments (len(x) mod 3) it can have inside a longer text, as
// when "user:" + value is encoded (a Basic auth header, a docker config). Each
// base64 character holds 6 bits: those that also hold bits of x or y are left
// out, so at most 4 bits of the value stay on either side of the mask.
void AddBase64Cores(absl::string_view value, std::vector<std::string>* out) {
  for (size_t align = 0; align < 3; ++align) {
    std::string shifted(align, '\0');
    shifted.append(value.data(), value.size());
    const size_t first = (8 * align + 5) / 6;               // first char wholly in value
    const size_t end = 8 * (align + value.size()) / 6;      // past the last one
    if (end < first + kMinDerivedForm) continue;
    for (const std::string& enc : {absl::Base64Escape(shifted), absl::WebSafeBase64Escape(shifted)}) {
      out->push_back(enc.substr(first, end - first));
    }
  }
}

}  // namespace

absl::Status CheckSecretForm(absl::string_view form) {
  if (form == kSecretFormBase64) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown secret form '", form, "' (forms: ", kSecretFormBase64,
                   "; URL-encoded forms and a URL's password are always masked)"));
}

std::string PercentEncode(absl::string_view value, bool upper_hex, absl::string_view keep,
                          bool space_plus) {
  const char* digits = upper_hex ? "0123456789ABCDEF" : "0123456789abcdef";
  std::string out;
  out.reserve(value.size() * 3);
  for (char c : value) {
    if (IsUnreserved(c) || absl::StrContains(keep, c)) {
      out += c;
    } else if (c == ' ' && space_plus) {
      out += '+';
    } else {
      const auto b = static_cast<unsigned char>(c);
      out += '%';
      out += digits[b >> 4];
      out += digits[b & 0xf];
    }
  }
  return out;
}

std::string PercentDecode(absl::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (size_t i = 0; i < value.size(); ++i) {
    if (value[i] == '%' && i + 2 < value.size()) {
      const int hi = HexValue(value[i + 1]);
      const int lo = HexValue(value[i + 2]);
      if (hi >= 0 && lo >= 0) {
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
        continue;
      }
    }
    out += value[i];
  }
  return out;
}

UrlSecretParts SplitUrlSecret(absl::string_view value) {
  const size_t sep = value.find("://");
  if (sep == absl::string_view::npos || sep == 0 ||
      !absl::ascii_isalpha(static_cast<unsigned char>(value[0]))) {
    return {};
  }
  for (char c : value.substr(0, sep)) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-' && c != '.') {
      return {};
    }
  }
  absl::string_view authority = value.substr(sep + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  const size_t at = authority.rfind('@');
  if (at == absl::string_view::npos) return {};
  UrlSecretParts parts;
  parts.userinfo = std::string(authority.substr(0, at));
  const size_t colon = parts.userinfo.find(':');
  if (colon != std::string::npos) parts.password = parts.userinfo.substr(colon + 1);
  return parts;
}

std::vector<std::string> SecretForms(absl::string_view value,
                                     const std::vector<std::string>& declared) {
  std::vector<std::string> forms;
  if (value.empty()) return forms;
  forms.emplace_back(value);
  AddEncodings(value, &forms);
  const UrlSecretParts url = SplitUrlSecret(value);
  for (const std::string& part : {url.userinfo, url.password}) {
    if (part.empty()) continue;
    // As written in the URL (often already encoded), decoded, and encoded.
    const std::string decoded = PercentDecode(part);
    std::vector<std::string> derived = {part, decoded};
    AddEncodings(decoded, &derived);
    for (std::string& d : derived) {
      if (d.size() >= kMinDerivedForm) forms.push_back(std::move(d));
    }
  }
  for (const std::string& form : declared) {
    if (form != kSecretFormBase64) continue;
    const std::string standard = absl::Base64Escape(value);
    forms.emplace_back(absl::StripTrailingAsciiWhitespace(standard));
    while (!forms.back().empty() && forms.back().back() == '=') forms.back().pop_back();
    forms.push_back(absl::WebSafeBase64Escape(value));
    AddBase64Cores(value, &forms);
  }
  std::sort(forms.begin(), forms.end());
  forms.erase(std::unique(forms.begin(), forms.end()), forms.end());
  return forms;
}

}  // namespace musafarm
