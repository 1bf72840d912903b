#pragma once

// Which files of a build context stay out of it: `.dockerignore` rules with
// Docker's semantics (github.com/moby/patternmatcher), written anew here.
//
//  - one pattern a line; blank lines and lines starting with '#' are skipped;
//    surrounding spaces are trimmed, the path is cleaned ("a//b/./c" = "a/b/c")
//    and a leading '/' dropped: every pattern is relative to the context root;
//  - '*' matches any run of characters except '/', '?' one such character,
//    "[a-z]" / "[^a-z]" a class, '\' escapes the next character, and '**'
//    any number of directories ("**/x", "a/**/b", "a/**");
//  - a pattern excludes a path it matches, and everything under a directory it
//    matches;
//  - a line starting with '!' is an exception: it puts back what it matches;
//  - the last pattern that matches a path (or a directory above it) decides.
// `.git/` is always excluded, whatever the file says (an exception cannot put
// it back): a working copy's history is not part of what is built.

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm::content {

class IgnoreRules {
 public:
  // No rules but the built-in `.git/`.
  IgnoreRules() = default;

  // Parses the text of a .dockerignore file; `where` names it in errors
  // ("DIR/.dockerignore:LINE: ..."), e.g. for an unterminated '['.
  static absl::StatusOr<IgnoreRules> Parse(absl::string_view text, absl::string_view where);

  // Whether `path` (relative to the root, '/'-separated, no leading '/') is
  // left out.
  bool Excluded(absl::string_view path) const;

  // Whether a directory that is itself excluded may still hold a path an
  // exception puts back, so a walk must look inside it.
  bool MayIncludeUnder(absl::string_view dir) const;

 private:
  struct Pattern {
    std::string glob;
    bool exception = false;
  };
  std::vector<Pattern> patterns_;
};

// Whether `glob` (the pattern language above) matches all of `path`. Exposed
// for tests.
bool GlobMatch(absl::string_view glob, absl::string_view path);

}  // namespace musafarm::content
