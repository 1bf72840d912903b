#pragma once

// Writing values into a /bin/sh script as data: a `${param}` in a `shell:`
// stage must reach the shell as the value's bytes, never as code
// (docs/pipeline.md, "Parameters in shell scripts").

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm::pipeline {

// True when `value` has only bytes no POSIX shell context treats specially
// (letters, digits and @%+=:,./-_), as Python's shlex.quote: such a value is
// written as it is, so scripts with ordinary values come out byte for byte as
// before quoting existed. The empty value is plain too (it stays empty).
bool IsPlainShellWord(absl::string_view value);

// `value` in single quotes, each ' written as '\'' (POSIX quoting: nothing
// inside single quotes is special).
std::string SingleQuote(absl::string_view value);

// Follows a shell script as it is written, in order, to know the quoting
// context at its end, and writes each substituted value so that the shell
// reads it back as exactly that text:
//   unquoted          'value'              (the quotes make one word of it)
//   inside "..."      "'value'"            (closes the double quotes, reopens them)
//   inside '...'      value with ' as '\'' (closes the single quotes, reopens them)
//   comment           value, line breaks as spaces (a line break would end the comment)
//   here-document     <<EOF: \ $ ` escaped; <<'EOF': as is; a line break, or a
//                     value that could complete the delimiter line, is refused
// A plain value (IsPlainShellWord) is written as it is everywhere. Where
// quoting cannot be made to hold — inside backquotes, $((...)), a shell
// ${...} (written `$${...}` in a pipeline), right after a backslash, or in a
// here-document's delimiter — a value that is not plain is refused rather than
// pasted. The tracking is a lexer of POSIX sh's quoting rules, not a parser:
// it never needs to understand commands, only where quotes, comments and
// here-documents begin and end.
//
// Not thread-safe; one per script.
class ShellQuoter {
 public:
  ShellQuoter();

  // Script text written as it is (the pipeline's own text).
  void Literal(absl::string_view text);
  // The text to write for `value` at the current end of the script, or why it
  // cannot be written there safely (a message without position: the caller
  // knows where the reference is).
  absl::StatusOr<std::string> Quote(absl::string_view value);

 private:
  enum class Ctx {
    kTop,          // unquoted, at command level (also inside $( ... ))
    kSingle,       // '...'
    kDouble,       // "..."
    kBackquote,    // `...`
    kParam,        // ${...}
    kArith,        // $(( ... ))
    kComment,      // # ... to the end of the line
    kHeredocWord,  // reading the delimiter after << or <<-
  };
  struct Heredoc {
    std::string delimiter;
    bool quoted = false;     // <<'EOF' or <<"EOF" or <<\EOF: the body is not expanded
    bool strip_tabs = false; // <<-
  };

  void Char(char c);
  void EndHeredocWord();
  Ctx top() const { return stack_.back(); }

  std::vector<Ctx> stack_;
  std::vector<int> parens_;   // per kTop/kArith level: its open '(' (-1: the first ')' of "))")
  bool escaped_ = false;      // the previous character was a backslash that escapes
  bool dollar_ = false;       // the previous character was an unescaped '$'
  bool opened_substitution_ = false;  // the previous characters were "$("
  bool prev_lt_ = false;      // the previous character was an unquoted '<'
  bool word_start_ = true;    // a '#' here starts a comment
  // Here-documents: those named on the current line start at its end; the
  // first of `bodies_` is being read, `line_` is its current line so far.
  std::vector<Heredoc> pending_;
  std::vector<Heredoc> bodies_;
  std::string line_;
  Heredoc word_;              // the delimiter being read (kHeredocWord)
  bool heredoc_fresh_ = false;  // nothing read yet after "<<"
  char word_quote_ = 0;       // the quote open inside the delimiter word
};

}  // namespace musafarm::pipeline
