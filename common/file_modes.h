#pragma once

// Private files and directories: the coordinator's data dir and the agent's
// work dir hold secrets, task logs and spooled output, so nobody but their
// owner may read them (issue 12; docs/security.md, "Secrets").

#include <string>

#include "absl/status/status.h"

namespace musafarm {

inline constexpr unsigned kPrivateDirMode = 0700;
inline constexpr unsigned kPrivateFileMode = 0600;

// Creates `dir` (and missing parents, as the umask makes them) and sets it to
// 0700, whatever mode an older version left it with. FailedPrecondition when
// it cannot be created or changed.
absl::Status MakePrivateDir(const std::string& dir);

// Sets the existing file `path` to 0600; a missing file is not an error.
absl::Status MakePrivateFile(const std::string& path);

}  // namespace musafarm
