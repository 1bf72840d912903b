// The streaming redactor (common/redactor.h) with every form of a secret
// (common/secret_forms.h) planted at up to 100 places of a task's output and the
// output cut into chunks at random: no form survives in what the Redactor emits,
// and the result does not depend on where the chunks were cut (it equals
// RedactString of the whole). Secrets here hold no '*', the mask's own byte, so a
// mask next to ordinary bytes cannot spell a form; docs/security.md ("Fuzzing")
// lists the forms that are not masked on purpose.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/escaping.h"
#include "common/redactor.h"
#include "common/secret_forms.h"
#include "tests/fuzz/fuzz_check.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

using musafarm::fuzz::FuzzInput;

std::string Without(std::string s, absl::string_view bytes) {
  for (char c : bytes) s.erase(std::remove(s.begin(), s.end(), c), s.end());
  return s;
}

// A secret value: arbitrary bytes, or a URL with credentials ("scheme://user:pass@host/").
std::string SecretValue(FuzzInput& in) {
  if (in.Bool()) {
    const std::string user = Without(in.Bytes(12), "*@/:?#");
    const std::string pass = Without(in.Bytes(16), "*@/?#");
    return absl::StrCat("https://", user, ":", pass, "@registry.example/v2/");
  }
  std::string value = Without(in.Bytes(40), "*");
  return value.empty() ? "s3cr3t" : value;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  std::vector<std::string> declared;
  if (in.Bool()) declared.push_back(musafarm::kSecretFormBase64);
  std::vector<std::string> forms = musafarm::SecretForms(SecretValue(in), declared);
  if (in.Bool()) {  // a second secret of the same task
    for (std::string& f : musafarm::SecretForms(SecretValue(in), declared)) forms.push_back(f);
  }
  uint32_t cut_state = in.Byte() * 2654435761u + 1;

  // Ordinary output with a form planted after each piece of it.
  std::string text;
  for (int planted = 0; planted < 100 && !in.empty(); ++planted) {
    text += in.Bytes(24);
    text += forms[in.Below(forms.size())];
  }

  musafarm::Redactor redactor(forms);
  std::string streamed;
  for (size_t at = 0; at < text.size();) {
    cut_state = cut_state * 1103515245u + 12345u;
    const size_t n = std::min<size_t>(text.size() - at, 1 + (cut_state >> 16) % 48);
    streamed += redactor.Feed(absl::string_view(text).substr(at, n));
    at += n;
  }
  streamed += redactor.Finish();

  for (const std::string& form : forms) {
    MF_FUZZ_CHECK(streamed.find(form) == std::string::npos, "form '%s' survived in '%s'",
                  absl::CEscape(form).c_str(), absl::CEscape(streamed).c_str());
  }
  const std::string whole = musafarm::RedactString(text, forms);
  MF_FUZZ_CHECK(streamed == whole, "chunked '%s' != whole '%s'", absl::CEscape(streamed).c_str(),
                absl::CEscape(whole).c_str());
  return 0;
}
