#!/usr/bin/env python3
"""Fails when an absl::Mutex in the tree guards nothing the analysis can see.

Every absl::Mutex (a member, a global or a static) must be named by at least
one ABSL_GUARDED_BY / ABSL_PT_GUARDED_BY in the file that declares it, so that
clang's -Wthread-safety (scripts/tsa-build.sh) checks every access to what it
protects. A mutex that only serializes calls guards no field: remove it, or
give the state it serializes a field to guard.

  check_mutex_guards.py --root DIR   walk DIR's .h/.cc files (build dirs skipped)
  check_mutex_guards.py FILE...      check these files only
Prints one FILE:LINE line per unguarded mutex and exits 1 if there is any.
"""
import os
import re
import sys

# `absl::Mutex mu_;`, `mutable absl::Mutex mu_;`, `absl::Mutex mu(absl::kConstInit);`
MUTEX = re.compile(r"\babsl::Mutex\s+(\w+)\s*[;({=]")
SOURCE_EXTS = (".h", ".hh", ".hpp", ".cc", ".cpp")


def strip_comments(text):
    """Blanks // and /* */ comments, keeping line numbers."""
    text = re.sub(r"/\*.*?\*/", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def unguarded(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        code = strip_comments(f.read())
    found = []
    for m in MUTEX.finditer(code):
        name = m.group(1)
        guard = re.compile(r"\bABSL_(?:PT_)?GUARDED_BY\(\s*&?\s*" + re.escape(name) + r"\s*\)")
        if not guard.search(code):
            line = code.count("\n", 0, m.start()) + 1
            found.append((line, name))
    return found


def walk(root):
    skip = {".git", "third_party"}
    for dirpath, dirnames, filenames in os.walk(root):
        # Build trees (build/, build-tsa/, ...) hold generated code, not ours.
        dirnames[:] = sorted(d for d in dirnames if d not in skip and not d.startswith("build"))
        for name in sorted(filenames):
            if name.endswith(SOURCE_EXTS):
                yield os.path.join(dirpath, name)


def main(argv):
    if len(argv) == 3 and argv[1] == "--root":
        files = list(walk(argv[2]))
    elif len(argv) >= 2 and not argv[1].startswith("-"):
        files = argv[1:]
    else:
        print(__doc__, file=sys.stderr)
        return 2
    bad = 0
    for path in files:
        for line, name in unguarded(path):
            print(f"{path}:{line}: absl::Mutex '{name}' guards nothing: "
                  f"no ABSL_GUARDED_BY({name}) or ABSL_PT_GUARDED_BY({name}) in this file")
            bad += 1
    print(f"checked {len(files)} files: {bad} unguarded mutex(es)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
