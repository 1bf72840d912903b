#pragma once

// The encodings of a secret's value that a task's output may carry, so that
// the Redactor masks each of them, not only the bytes as given
// (docs/security.md, "Secrets").

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace musafarm {

// Extra forms a pipeline may declare for a secret (`secrets: [{name: X,
// forms: [base64]}]`); the rest are always masked.
inline constexpr char kSecretFormBase64[] = "base64";
// An error naming `form` when it is not one of the declarable forms.
absl::Status CheckSecretForm(absl::string_view form);

// Percent-encoding of every byte outside [A-Za-z0-9-._~] (RFC 3986
// unreserved), with upper- or lower-case hex: what curl_easy_escape and
// Python's urllib.parse.quote(v, safe="") write. `keep` lists further bytes
// left as they are (Python's default quote keeps '/'); with `space_plus` a
// space becomes '+' (quote_plus, HTML forms).
std::string PercentEncode(absl::string_view value, bool upper_hex, absl::string_view keep = "",
                          bool space_plus = false);
// %XX (either case) decoded; anything else, a malformed % included, kept.
std::string PercentDecode(absl::string_view value);

// Parts of a URL secret, "scheme://userinfo@host...": userinfo ("user:pass")
// and the password alone; empty strings when `value` is not such a URL or
// has no password.
struct UrlSecretParts {
  std::string userinfo;
  std::string password;
};
UrlSecretParts SplitUrlSecret(absl::string_view value);

// Derived forms shorter than this are not masked: masking a 2-byte password
// everywhere would destroy the log and tell its value by what went missing.
// The value itself is masked whatever its length.
inline constexpr size_t kMinDerivedForm = 4;

// Every form of `value` to mask: the value; its percent-encodings (upper and
// lower hex; reserved bytes all encoded, '/' kept, space as '+'); for a URL
// secret, its userinfo and its password, each also percent-decoded and
// percent-encoded; and the `declared` extra forms (base64: standard and
// URL-safe alphabets, without padding, so the padded text is caught too; and
// the part of it that stays the same inside a longer encoded text, at each of
// the three alignments).
// Distinct, in no particular order.
std::vector<std::string> SecretForms(absl::string_view value,
                                     const std::vector<std::string>& declared = {});

}  // namespace musafarm
