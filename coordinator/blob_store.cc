#include "coordinator/blob_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "content/digest.h"

namespace musafarm::coordinator {

absl::StatusOr<content::TreeStats> CheckTreeComplete(BlobStore& store, const v1::Digest& root,
                                                    absl::string_view input) {
  MF_RETURN_IF_ERROR(content::CheckDigest(root, absl::StrCat(input, ": tree")));
  // Each file's digest with its path, for the message about the first missing.
  std::vector<std::pair<v1::Digest, std::string>> files;
  content::TreeVisitor visit;
  visit.directory = [&](const std::string& path, const v1::Digest&, const v1::Directory& dir) {
    for (const v1::FileNode& f : dir.files()) {
      files.emplace_back(f.digest(), path.empty() ? f.name() : absl::StrCat(path, "/", f.name()));
    }
    return absl::OkStatus();
  };
  content::DirectoryFetcher fetch = [&](const v1::Digest& d) -> absl::StatusOr<std::string> {
    absl::StatusOr<std::string> blob = store.ReadSmall(d, kMaxDirectoryBlobBytes);
    if (blob.status().code() == absl::StatusCode::kNotFound) {
      return absl::FailedPreconditionError(
          absl::StrCat(input, ": directory blob ", content::ShortDigest(d),
                       " is not in the content store; upload the tree first"));
    }
    return blob;
  };
  absl::StatusOr<content::TreeStats> stats = content::WalkTree(root, fetch, visit);
  if (!stats.ok()) {
    return absl::Status(stats.status().code(), absl::StrCat(input, ": ", stats.status().message()));
  }
  constexpr size_t kBatch = 10000;
  for (size_t i = 0; i < files.size(); i += kBatch) {
    std::vector<v1::Digest> batch;
    for (size_t j = i; j < files.size() && j < i + kBatch; ++j) batch.push_back(files[j].first);
    MF_ASSIGN_OR_RETURN(std::vector<v1::Digest> missing, store.FindMissing(batch));
    if (missing.empty()) continue;
    for (size_t j = i; j < files.size() && j < i + kBatch; ++j) {
      if (files[j].first.sha256() != missing[0].sha256()) continue;
      return absl::FailedPreconditionError(
          absl::StrCat(input, ": blob ", content::ShortDigest(missing[0]), " of '",
                       files[j].second, "' is not in the content store; upload the tree first"));
    }
  }
  return stats;
}

}  // namespace musafarm::coordinator
