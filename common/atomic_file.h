#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm {

// A file that appears whole or not at all: bytes go to PATH.part, and Commit()
// syncs it, renames it to PATH and syncs the directory, so that a crash leaves
// either the old PATH or the new one, never a short one. Dropped without a
// Commit(), or after a failed one, the .part file is removed. Errors read
// "PATH.part: why". The one way this tree replaces a file: the agent's state,
// results and image use times, the CLI's downloads and reports, redacted
// artifacts and the coordinator's port file all go through it.
class AtomicFile {
 public:
  // Creates (or truncates) PATH.part with `mode` (before the umask).
  static absl::StatusOr<std::unique_ptr<AtomicFile>> Create(const std::string& path,
                                                            int mode = 0644);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  absl::Status Append(absl::string_view data);
  // Syncs, closes and renames PATH.part to PATH, replacing any PATH, then
  // syncs PATH's directory (the rename is durable only once it is).
  absl::Status Commit();
  // Closes and renames PATH.part to PATH without syncing either: every other
  // process sees the old PATH or the whole new one, never a short one, but a
  // machine crash may leave the old one, an empty one or none. For what only
  // matters while the machine stays up (the agent's running attempts).
  absl::Status CommitUnsynced();

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }

 private:
  AtomicFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  void Abort();
  absl::Status Finish(bool sync);

  std::string path_;
  int fd_;
  uint64_t size_ = 0;
};

// `data` to `path` through an AtomicFile.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view data, int mode = 0644);
// `data` to `path` through an AtomicFile, committed without syncing
// (CommitUnsynced): no fsync, for a file that need not survive a machine crash.
absl::Status WriteFileUnsynced(const std::string& path, absl::string_view data, int mode = 0644);

}  // namespace musafarm
