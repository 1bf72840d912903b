#include "pipeline/shell_quote.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace musafarm::pipeline {
namespace {

bool IsBlank(char c) { return c == ' ' || c == '\t'; }
// Characters that end a word in unquoted shell text.
bool EndsWord(char c) {
  return IsBlank(c) || c == '\n' || c == ';' || c == '&' || c == '|' || c == '<' || c == '>' ||
         c == '(' || c == ')';
}

}  // namespace

bool IsPlainShellWord(absl::string_view value) {
  for (char c : value) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        !absl::StrContains("@%+=:,./-_", c)) {
      return false;
    }
  }
  return true;
}

std::string SingleQuote(absl::string_view value) {
  return absl::StrCat("'", absl::StrReplaceAll(value, {{"'", "'\\''"}}), "'");
}

ShellQuoter::ShellQuoter() : stack_{Ctx::kTop}, parens_{0} {}

void ShellQuoter::Literal(absl::string_view text) {
  for (char c : text) Char(c);
}

void ShellQuoter::EndHeredocWord() {
  pending_.push_back(word_);
  word_ = Heredoc{};
  stack_.pop_back();
}

void ShellQuoter::Char(char c) {
  const bool dollar = dollar_;
  const bool opened_substitution = opened_substitution_;
  dollar_ = false;
  opened_substitution_ = false;

  if (!bodies_.empty()) {  // a here-document's body: lines up to its delimiter
    if (c != '\n') {
      line_ += c;
      return;
    }
    absl::string_view line = line_;
    if (bodies_.front().strip_tabs) {
      while (!line.empty() && line.front() == '\t') line.remove_prefix(1);
    }
    if (line == bodies_.front().delimiter) bodies_.erase(bodies_.begin());
    line_.clear();
    return;
  }

  switch (top()) {
    case Ctx::kSingle:
      if (c == '\'') stack_.pop_back();
      return;

    case Ctx::kComment:
      if (c != '\n') return;
      stack_.pop_back();
      break;  // the line break also ends the command line: see kTop below

    case Ctx::kHeredocWord:
      if (word_quote_ != 0) {
        if (c == word_quote_) {
          word_quote_ = 0;
        } else {
          word_.delimiter += c;
        }
        return;
      }
      if (escaped_) {
        escaped_ = false;
        word_.delimiter += c;
        return;
      }
      if (heredoc_fresh_) {
        heredoc_fresh_ = false;
        if (c == '-') {
          word_.strip_tabs = true;
          return;
        }
        if (c == '<') {  // bash's <<< here-string: no here-document
          word_ = Heredoc{};
          stack_.pop_back();
          return;
        }
      }
      if (word_.delimiter.empty() && !word_.quoted && IsBlank(c)) return;
      if (c == '\'' || c == '"') {
        word_quote_ = c;
        word_.quoted = true;
        return;
      }
      if (c == '\\') {
        escaped_ = true;
        word_.quoted = true;
        return;
      }
      if (!EndsWord(c)) {
        word_.delimiter += c;
        return;
      }
      EndHeredocWord();
      break;  // the character that ended the word counts in the enclosing context

    default:
      break;
  }

  const Ctx ctx = top();
  if (escaped_) {
    escaped_ = false;
    word_start_ = false;
    return;
  }
  if (ctx == Ctx::kBackquote) {
    if (c == '\\') escaped_ = true;
    if (c == '`') stack_.pop_back();
    return;
  }
  if (ctx == Ctx::kDouble || ctx == Ctx::kParam || ctx == Ctx::kArith) {
    if (c == '\\') {
      escaped_ = true;
    } else if (c == '$') {
      dollar_ = true;
    } else if (c == '`') {
      stack_.push_back(Ctx::kBackquote);
    } else if (c == '(' && dollar) {
      stack_.push_back(Ctx::kTop);
      parens_.push_back(0);
      opened_substitution_ = true;
    } else if (c == '{' && dollar) {
      stack_.push_back(Ctx::kParam);
    } else if (ctx == Ctx::kDouble && c == '"') {
      stack_.pop_back();
    } else if (ctx == Ctx::kParam && c == '}') {
      stack_.pop_back();
    } else if (ctx == Ctx::kParam && (c == '"' || c == '\'')) {
      // Quotes inside ${...} nest in ways shells disagree on; values there
      // must be plain (Quote), so the exact nesting never matters for safety.
    } else if (ctx == Ctx::kArith && c == '(') {
      ++parens_.back();
    } else if (ctx == Ctx::kArith && c == ')') {
      if (parens_.back() > 0) {
        --parens_.back();
      } else if (parens_.back() == 0) {
        parens_.back() = -1;  // the first of "))"
      } else {
        stack_.pop_back();
        parens_.pop_back();
      }
    }
    return;
  }

  // kTop: unquoted, at command level or inside $( ... ).
  const bool word_start = word_start_;
  word_start_ = EndsWord(c);
  switch (c) {
    case '\\':
      escaped_ = true;
      break;
    case '\'':
      stack_.push_back(Ctx::kSingle);
      break;
    case '"':
      stack_.push_back(Ctx::kDouble);
      break;
    case '`':
      stack_.push_back(Ctx::kBackquote);
      break;
    case '$':
      dollar_ = true;
      break;
    case '{':
      if (dollar) stack_.push_back(Ctx::kParam);
      break;
    case '#':
      if (word_start) stack_.push_back(Ctx::kComment);
      break;
    case '(':
      if (opened_substitution) {  // "$((": arithmetic, not a command
        stack_.back() = Ctx::kArith;
        parens_.back() = 0;
      } else if (dollar) {
        stack_.push_back(Ctx::kTop);
        parens_.push_back(0);
        opened_substitution_ = true;
      } else {
        ++parens_.back();
      }
      break;
    case ')':
      if (parens_.back() > 0) {
        --parens_.back();
      } else if (stack_.size() > 1) {
        stack_.pop_back();
        parens_.pop_back();
      }
      break;
    case '<':
      if (prev_lt_) {
        stack_.push_back(Ctx::kHeredocWord);
        heredoc_fresh_ = true;
        prev_lt_ = false;
        return;
      }
      prev_lt_ = true;
      return;
    case '\n':
      // Here-documents begin after the line that names them ends.
      for (Heredoc& h : pending_) bodies_.push_back(std::move(h));
      pending_.clear();
      line_.clear();
      break;
    default:
      break;
  }
  prev_lt_ = false;
}

absl::StatusOr<std::string> ShellQuoter::Quote(absl::string_view value) {
  std::string out;
  if (!bodies_.empty()) {
    const Heredoc& h = bodies_.front();
    if (absl::StrContains(value, '\n')) {
      return absl::InvalidArgumentError(
          absl::StrCat("a value with a line break cannot be written into the here-document <<",
                       h.delimiter, " safely"));
    }
    absl::string_view line = line_;
    if (h.strip_tabs) {
      while (!line.empty() && line.front() == '\t') line.remove_prefix(1);
    }
    if (absl::StartsWith(h.delimiter, absl::StrCat(line, value))) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the value '", value, "' could end the here-document <<", h.delimiter, " early"));
    }
    out = h.quoted ? std::string(value)
                   : absl::StrReplaceAll(value, {{"\\", "\\\\"}, {"$", "\\$"}, {"`", "\\`"}});
  } else if (IsPlainShellWord(value)) {
    out = std::string(value);
  } else {
    absl::string_view where;
    if (escaped_) {
      where = "right after a backslash";
    } else if (dollar_) {
      where = "right after a '$'";
    } else {
      switch (top()) {
        case Ctx::kTop:
          out = SingleQuote(value);
          break;
        case Ctx::kDouble:
          out = absl::StrCat("\"", SingleQuote(value), "\"");
          break;
        case Ctx::kSingle:
          out = absl::StrReplaceAll(value, {{"'", "'\\''"}});
          break;
        case Ctx::kComment:
          out = absl::StrReplaceAll(value, {{"\n", " "}});
          break;
        case Ctx::kBackquote:
          where = "inside `...` (write $(...) instead)";
          break;
        case Ctx::kParam:
          where = "inside a shell ${...} (written $${...} in a pipeline)";
          break;
        case Ctx::kArith:
          where = "inside $((...))";
          break;
        case Ctx::kHeredocWord:
          where = "in a here-document's delimiter";
          break;
      }
    }
    if (!where.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "the value '", value, "' has characters special to /bin/sh and cannot be quoted ",
          where, "; only letters, digits and @%+=:,./-_ are written there"));
    }
  }
  Literal(out);
  return out;
}

}  // namespace musafarm::pipeline
