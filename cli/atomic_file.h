#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace musafarm::cli {

// A file that appears whole or not at all: bytes go to PATH.part, and Commit()
// syncs it and renames it to PATH. Dropped without a Commit(), or after a
// failed one, the .part file is removed. Errors read "PATH.part: why".
class AtomicFile {
 public:
  // Creates (or truncates) PATH.part.
  static absl::StatusOr<std::unique_ptr<AtomicFile>> Create(const std::string& path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  absl::Status Append(absl::string_view data);
  // Flushes, syncs, closes and renames PATH.part to PATH, replacing any PATH.
  absl::Status Commit();

  const std::string& path() const { return path_; }
  uint64_t size() const { return size_; }

 private:
  AtomicFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  void Abort();

  std::string path_;
  int fd_;
  uint64_t size_ = 0;
};

// `data` to `path` through an AtomicFile.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view data);

}  // namespace musafarm::cli
