#pragma once

// Merkle trees of directories (issue 17): a v1::Directory lists its files,
// subdirectories and symbolic links by name, each sorted; its deterministic
// serialization is a blob, and that blob's digest names the directory. The
// packer (packer.h) builds trees from a local directory; the coordinator checks
// uploaded ones and walks them for garbage collection; the agent materializes
// them.

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "musafarm/v1/content_service.pb.h"

namespace musafarm::content {

// The blob of `dir`: its deterministic serialization.
std::string SerializeDirectory(const v1::Directory& dir);

// Parses a Directory blob and checks what any reader of a tree relies on:
// names are single path components (not "", ".", "..", no '/' or NUL), each
// list sorted, no name twice across the lists, digests well formed, symlink
// targets relative. `depth` is how many directories below the root it sits
// (0 for the root): a symlink whose target climbs above the root is refused.
// `where` ("tree sha256:...: dir a/b") starts every error (INVALID_ARGUMENT).
absl::StatusOr<v1::Directory> ParseDirectory(absl::string_view blob, int depth,
                                             absl::string_view where);

// Whether a symbolic link at depth `depth` (0: in the root directory) with
// `target` stays inside the root: relative, and never climbing above it at any
// point of the path.
bool SymlinkStaysInside(absl::string_view target, int depth);

// What a walk of a tree meets: every directory (its path, "" for the root),
// before its contents.
struct TreeVisitor {
  // Called for each directory, with its parsed contents.
  std::function<absl::Status(const std::string& path, const v1::Digest& digest,
                             const v1::Directory& dir)>
      directory;
};

// Fetches a directory blob by digest (the caller checks its hash).
using DirectoryFetcher = std::function<absl::StatusOr<std::string>(const v1::Digest&)>;

// Totals of a tree: regular files and their bytes (symlinks and directories
// are not counted).
struct TreeStats {
  int64_t files = 0;
  int64_t bytes = 0;
  int64_t directories = 0;
};

// Walks the tree rooted at `root` depth-first, in name order, fetching each
// directory with `fetch` and checking it with ParseDirectory; stops at the
// first error. Trees deeper than 256 directories are refused.
absl::StatusOr<TreeStats> WalkTree(const v1::Digest& root, const DirectoryFetcher& fetch,
                                   const TreeVisitor& visit);

}  // namespace musafarm::content
