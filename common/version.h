#pragma once

#include <string>

namespace musafarm {

// "musafarm 0.1.0 (git 8948e29f3a)", "(git 8948e29f3a-dirty)" for a build of
// a tree with uncommitted changes, "(git unknown)" outside a git checkout:
// what `--version` prints on every binary. The revision is taken at build
// time (common/version_rev.cmake), so a new commit relinks, not recompiles.
std::string VersionLine();

// "0.1.0": the project's version (CMakeLists.txt).
const char* ProjectVersion();

// "8948e29f3a", "8948e29f3a-dirty" or "unknown": the revision VersionLine names.
const char* GitRevision();

}  // namespace musafarm
