#pragma once

// Git job inputs (issue 17): `--context NAME=git+https://host/repo#branch`
// (also git+file://, git://) resolved on the coordinator to a commit with
// `git ls-remote`, fetched into a bare cache under the data dir, and its tree
// imported into the content store, so the job builds a pinned revision and
// records which. Credentials in a URL are used for git and never logged,
// stored or shown: the recorded source has them stripped.

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "coordinator/blob_store.h"
#include "musafarm/v1/farm.pb.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::coordinator {

struct GitSource {
  std::string url;    // what git is given, credentials included
  std::string ref;    // branch, tag or commit; "HEAD" when none was given
  std::string shown;  // the source as recorded and shown: no credentials
};

// Whether `source` names a git input ("git+...", "git://...").
bool IsGitSource(absl::string_view source);

// INVALID_ARGUMENT naming what is wrong (scheme, empty ref, a URL git would
// read as an option).
absl::StatusOr<GitSource> ParseGitSource(absl::string_view source);

// Runs git (argv only, GIT_TERMINAL_PROMPT=0, each command bounded by
// `timeout`). Blocks: call it off the core loop.
class GitImporter {
 public:
  GitImporter(std::string cache_dir, BlobStore* blobs, absl::Duration timeout = absl::Minutes(10))
      : cache_dir_(std::move(cache_dir)), blobs_(blobs), timeout_(timeout) {}

  // Resolves input `name` from `source` and imports its tree: the JobInput
  // with tree, commit, files and bytes, and `source` without credentials.
  // FAILED_PRECONDITION when the repository or ref cannot be had, saying what
  // git said (credentials removed).
  absl::StatusOr<v1::JobInput> Import(const std::string& name, const std::string& source);

  // How many times Import ran: what ResolveGitInputs' sharing saves, seen.
  int64_t imports() const { return imports_.load(); }

 private:
  std::atomic<int64_t> imports_{0};
  const std::string cache_dir_;
  BlobStore* const blobs_;
  const absl::Duration timeout_;
};

// Resolves every input of `request` that carries a source but no tree: a git
// source is imported with `git` (its tree, commit, counts and the source
// without credentials replace what was sent); a join (joined_inputs.h) is
// left for ResolveJoinedInputs, which runs after this; any other source is
// INVALID_ARGUMENT naming the input. Inputs with the same source (the uses
// of one ref by several cells) are resolved once. Blocks: off the core loop.
absl::Status ResolveGitInputs(GitImporter& git, v1::SubmitRequest* request);

}  // namespace musafarm::coordinator
