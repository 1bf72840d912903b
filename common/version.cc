#include "common/version.h"

#include "absl/strings/str_cat.h"
#include "version_rev.h"  // generated: MF_GIT_REV

#ifndef MF_PROJECT_VERSION
#error "MF_PROJECT_VERSION is set by common/CMakeLists.txt"
#endif

namespace musafarm {

const char* ProjectVersion() { return MF_PROJECT_VERSION; }

const char* GitRevision() { return MF_GIT_REV; }

std::string VersionLine() {
  return absl::StrCat("musafarm ", MF_PROJECT_VERSION, " (git ", MF_GIT_REV, ")");
}

}  // namespace musafarm
