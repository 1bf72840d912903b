#include "content/ignore.h"

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace musafarm::content {
namespace {

// Go's path.Clean without the leading '/': "a//b/./c/../d" -> "a/b/d".
std::string CleanPattern(absl::string_view p) {
  std::vector<std::string> out;
  for (absl::string_view seg : absl::StrSplit(p, '/')) {
    if (seg.empty() || seg == ".") continue;
    if (seg == ".." && !out.empty() && out.back() != "..") {
      out.pop_back();
      continue;
    }
    out.emplace_back(seg);
  }
  return absl::StrJoin(out, "/");
}

// Matches one character class at the start of `glob` ("[...]") against `c`.
// Returns the class's length in `len`, or false in `ok` for a malformed class.
bool MatchClass(absl::string_view glob, char c, size_t* len, bool* ok) {
  size_t i = 1;
  bool negate = false;
  if (i < glob.size() && (glob[i] == '^' || glob[i] == '!')) {
    negate = true;
    ++i;
  }
  bool matched = false;
  bool first = true;
  while (i < glob.size() && (glob[i] != ']' || first)) {
    first = false;
    char lo = glob[i];
    if (lo == '\\' && i + 1 < glob.size()) lo = glob[++i];
    ++i;
    char hi = lo;
    if (i + 1 < glob.size() && glob[i] == '-' && glob[i + 1] != ']') {
      hi = glob[i + 1];
      if (hi == '\\' && i + 2 < glob.size()) hi = glob[++i + 1];
      i += 2;
    }
    if (lo <= c && c <= hi) matched = true;
  }
  if (i >= glob.size()) {
    *ok = false;
    return false;
  }
  *ok = true;
  *len = i + 1;
  return matched != negate;
}

// An unterminated class or a trailing escape, or "" when the glob is sound.
std::string GlobError(absl::string_view glob) {
  for (size_t i = 0; i < glob.size(); ++i) {
    if (glob[i] == '\\') {
      if (i + 1 == glob.size()) return "ends in an escape '\\'";
      ++i;
    } else if (glob[i] == '[') {
      size_t len = 0;
      bool ok = false;
      MatchClass(glob.substr(i), 'a', &len, &ok);
      if (!ok) return "has a '[' without its ']'";
      i += len - 1;
    }
  }
  return "";
}

bool IsGitPath(absl::string_view path) {
  return path == ".git" || absl::StartsWith(path, ".git/");
}

// Whether `glob` matches `path` itself or a directory above it.
bool MatchesOrParentMatches(absl::string_view glob, absl::string_view path) {
  if (GlobMatch(glob, path)) return true;
  for (size_t i = 0; i < path.size(); ++i) {
    if (path[i] == '/' && GlobMatch(glob, path.substr(0, i))) return true;
  }
  return false;
}

}  // namespace

bool GlobMatch(absl::string_view glob, absl::string_view path) {
  while (!glob.empty()) {
    if (absl::StartsWith(glob, "**")) {
      absl::string_view rest = glob.substr(2);
      if (absl::StartsWith(rest, "/")) {
        // "**/": zero or more whole directories.
        rest.remove_prefix(1);
        if (GlobMatch(rest, path)) return true;
        for (size_t i = 0; i < path.size(); ++i) {
          if (path[i] == '/' && GlobMatch(rest, path.substr(i + 1))) return true;
        }
        return false;
      }
      for (size_t i = 0; i <= path.size(); ++i) {
        if (GlobMatch(rest, path.substr(i))) return true;
      }
      return false;
    }
    const char g = glob[0];
    if (g == '*') {
      absl::string_view rest = glob.substr(1);
      for (size_t i = 0; i <= path.size(); ++i) {
        if (GlobMatch(rest, path.substr(i))) return true;
        if (i < path.size() && path[i] == '/') break;
      }
      return false;
    }
    if (path.empty()) return false;
    if (g == '?') {
      if (path[0] == '/') return false;
      glob.remove_prefix(1);
    } else if (g == '[') {
      size_t len = 0;
      bool ok = false;
      if (path[0] == '/' || !MatchClass(glob, path[0], &len, &ok) || !ok) return false;
      glob.remove_prefix(len);
    } else {
      char want = g;
      size_t len = 1;
      if (g == '\\' && glob.size() > 1) {
        want = glob[1];
        len = 2;
      }
      if (path[0] != want) return false;
      glob.remove_prefix(len);
    }
    path.remove_prefix(1);
  }
  return path.empty();
}

absl::StatusOr<IgnoreRules> IgnoreRules::Parse(absl::string_view text, absl::string_view where) {
  IgnoreRules rules;
  int line_no = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_no;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    Pattern p;
    if (line[0] == '!') {
      p.exception = true;
      line = absl::StripLeadingAsciiWhitespace(line.substr(1));
    }
    p.glob = CleanPattern(line);
    if (p.glob.empty()) continue;  // "/" or "." alone: Docker ignores them too
    if (std::string why = GlobError(p.glob); !why.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ":", line_no, ": pattern '", line, "' ", why));
    }
    rules.patterns_.push_back(std::move(p));
  }
  return rules;
}

bool IgnoreRules::Excluded(absl::string_view path) const {
  if (IsGitPath(path)) return true;
  bool excluded = false;
  for (const Pattern& p : patterns_) {
    if (p.exception == !excluded) continue;  // cannot change the verdict
    if (MatchesOrParentMatches(p.glob, path)) excluded = !p.exception;
  }
  return excluded;
}

bool IgnoreRules::MayIncludeUnder(absl::string_view dir) const {
  if (IsGitPath(dir)) return false;
  const std::string prefix = absl::StrCat(dir, "/");
  for (const Pattern& p : patterns_) {
    if (!p.exception) continue;
    // An exception without wildcards names one path: only one under `dir` counts.
    if (p.glob.find_first_of("*?[\\") == std::string::npos &&
        !absl::StartsWith(p.glob, prefix)) {
      continue;
    }
    return true;
  }
  return false;
}

}  // namespace musafarm::content
