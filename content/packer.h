#pragma once

// Packs a local directory into a content tree (issue 17): what `musafarm
// submit --context NAME=DIR` uploads. Files are named by their SHA-256, each
// directory becomes a v1::Directory blob, and only what the ignore rules leave
// in is packed.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "musafarm/v1/content_service.pb.h"

namespace musafarm::content {

struct PackOptions {
  // Read from the root, if there: .dockerignore rules (ignore.h). "" = none
  // (`.git/` is excluded all the same).
  std::string ignore_file = ".dockerignore";
  // Refuse a directory whose files add up to more (0: no limit), checked from
  // the file sizes before anything is read. The message names the limit and
  // `limit_source` (e.g. "the coordinator's --blob-store-bytes").
  int64_t max_bytes = 0;
  std::string limit_source;
};

// One blob of a packed tree: a file on disk, or a directory's serialization.
struct PackedBlob {
  v1::Digest digest;
  std::string path;   // a regular file's absolute path; "" for a directory
  std::string bytes;  // a directory blob; empty for a file
};

struct PackedTree {
  v1::Digest root;
  // Every distinct blob, by sha256 (files with equal content appear once).
  std::map<std::string, PackedBlob> blobs;
  // The directory blobs' sha256, each once, every directory after those below
  // it (the root last): the order to upload them in, so that a directory the
  // coordinator holds implies that it holds everything under it.
  std::vector<std::string> directories;
  int64_t files = 0;   // regular files in the tree (duplicates counted each time)
  int64_t bytes = 0;   // their sizes added up
  // The paths of the files and symbolic links packed, relative to the root,
  // sorted: what the ignore rules left in.
  std::vector<std::string> manifest;
};

// Packs `dir`. Keeps the executable bit (the owner's) of files and symbolic
// links as links. Refuses (INVALID_ARGUMENT, naming the path) a symbolic link
// that points outside `dir` (absolute, or climbing above it) and anything
// that is not a file, directory or link (a socket, a device); a bad ignore
// file names its line. RESOURCE_EXHAUSTED, naming the limit, when the files
// exceed options.max_bytes.
absl::StatusOr<PackedTree> PackDirectory(const std::string& dir, const PackOptions& options = {});

}  // namespace musafarm::content
