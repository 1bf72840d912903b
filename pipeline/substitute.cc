#include "pipeline/substitute.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace musafarm::pipeline {

absl::StatusOr<std::string> Substituter::Substitute(const Text& t, const std::vector<Var>& vars,
                                                    absl::string_view where) const {
  std::string out;
  out.reserve(t.value.size());
  MF_RETURN_IF_ERROR(SubstituteSpan(t, 0, t.value.size(), vars, where, &out));
  return out;
}

absl::StatusOr<std::string> Substituter::SubstituteShell(const Text& t,
                                                         const std::vector<Var>& vars,
                                                         absl::string_view where) const {
  std::string out;
  out.reserve(t.value.size());
  ShellQuoter quoter;
  MF_RETURN_IF_ERROR(SubstituteSpan(t, 0, t.value.size(), vars, where, &out, &quoter));
  return out;
}

// Substitutes t.value[begin, end) into *out; with a `quoter`, the text is a
// shell script and each reference's value is quoted for where it stands. Positions stay those of t.value,
// so errors inside a `${name:-default}` point at the right column.
absl::Status Substituter::SubstituteSpan(const Text& t, size_t begin, size_t end,
                                         const std::vector<Var>& vars, absl::string_view where,
                                         std::string* out, ShellQuoter* quoter) const {
  const std::string& in = t.value;
  size_t i = begin;
  while (i < end) {
    if (in.compare(i, 3, "$${") == 0 && i + 3 <= end) {
      *out += "${";
      if (quoter != nullptr) quoter->Literal("${");
      i += 3;
      continue;
    }
    if (in.compare(i, 2, "${") != 0 || i + 2 > end) {
      if (quoter != nullptr) quoter->Literal(absl::string_view(&in[i], 1));
      *out += in[i++];
      continue;
    }
    // The name runs to '}' or to ":-", which starts a default that may itself
    // hold ${...}: find the '}' that closes this reference.
    size_t close = i + 2;
    while (close < end && in[close] != '}' && in.compare(close, 2, ":-") != 0) ++close;
    size_t default_begin = std::string::npos;
    if (close < end && in[close] != '}') {
      default_begin = close + 2;
      int depth = 0;
      size_t j = default_begin;
      for (; j < end; ++j) {
        if (in.compare(j, 3, "$${") == 0) {
          // A literal "${...}" in the default: its '}' closes it, not us.
          ++depth;
          j += 2;
        } else if (in.compare(j, 2, "${") == 0) {
          ++depth;
          ++j;
        } else if (in[j] == '}') {
          if (depth == 0) break;
          --depth;
        }
      }
      close = j;
    }
    if (close >= end) {
      return r_.Error(r_.Locate(t, i), t.field,
                      "unterminated '${' (write '$${' for a literal '${')");
    }
    const size_t name_end = default_begin == std::string::npos ? close : default_begin - 2;
    absl::string_view name = absl::string_view(in).substr(i + 2, name_end - i - 2);
    const bool matrix_only = absl::ConsumePrefix(&name, "matrix.");
    const Var* found = nullptr;
    for (const Var& v : vars) {
      if (v.name == name && !(matrix_only && v.param)) found = &v;
    }
    if (found == nullptr) {
      std::vector<std::string> known;
      for (const Var& v : vars) known.push_back(v.name);
      // Secret values never reach the parser; a stage gets them through `secrets`.
      const std::string secret =
          Contains(secrets_, name)
              ? absl::StrCat("; '", name,
                             "' is a secret, which is never substituted: list it in the stage's "
                             "'secrets' to pass it to the task")
              : "";
      return r_.Error(
          r_.Locate(t, i), t.field,
          absl::StrCat("unknown variable '", name, "'", where, " (known: ", ListOrNone(known),
                       "; write '$${' for a literal '${'", secret, ")"));
    }
    // The reference's value, a default's literal text included, is one value:
    // with a quoter it is data as a whole.
    std::string value;
    if (default_begin != std::string::npos && found->value.empty()) {
      // Shell's ${name:-word}: the default when the value is empty.
      MF_RETURN_IF_ERROR(SubstituteSpan(t, default_begin, close, vars, where, &value));
    } else {
      if (default_begin != std::string::npos) {
        // Not used here, but checked all the same: a pipeline must not pass
        // for one submitter and break for the next who leaves `name` empty.
        std::string unused;
        MF_RETURN_IF_ERROR(SubstituteSpan(t, default_begin, close, vars, where, &unused));
      }
      value = found->value;
    }
    if (quoter != nullptr) {
      absl::StatusOr<std::string> quoted = quoter->Quote(value);
      if (!quoted.ok()) {
        return r_.Error(r_.Locate(t, i), t.field,
                        absl::StrCat("'", absl::string_view(in).substr(i, close + 1 - i), "'", where, ": ", quoted.status().message()));
      }
      value = *std::move(quoted);
    }
    *out += value;
    i = close + 1;
  }
  return absl::OkStatus();
}

absl::Status Substituter::Invalid(const Text& t, absl::string_view where,
                                  absl::string_view what) const {
  if (t.value.find("${") == std::string::npos) return r_.Error(t.mark, t.field, what);
  return r_.Error(t.mark, t.field, absl::StrCat(what, " (from '", t.value, "'", where, ")"));
}

absl::Status Substituter::SubstituteAll(
    const std::vector<Text>& texts, const std::vector<Var>& vars, absl::string_view where,
    bool non_empty, google::protobuf::RepeatedPtrField<std::string>* out) const {
  for (const Text& t : texts) {
    MF_ASSIGN_OR_RETURN(std::string value, Substitute(t, vars, where));
    if (non_empty && value.empty()) return Invalid(t, where, "must not be empty");
    out->Add(std::move(value));
  }
  return absl::OkStatus();
}

}  // namespace musafarm::pipeline
