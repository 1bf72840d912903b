#include "coordinator/blob_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/format_bytes.h"
#include "common/logging.h"
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

std::set<std::string> ReachableBlobs(BlobStore& store, const std::vector<v1::Digest>& roots) {
  std::set<std::string> reachable;
  for (const v1::Digest& root : roots) {
    content::TreeVisitor visit;
    visit.directory = [&](const std::string&, const v1::Digest& d, const v1::Directory& dir) {
      reachable.insert(d.sha256());
      for (const v1::FileNode& f : dir.files()) reachable.insert(f.digest().sha256());
      return absl::OkStatus();
    };
    absl::StatusOr<content::TreeStats> walked = content::WalkTree(
        root, [&](const v1::Digest& d) { return store.ReadSmall(d, kMaxDirectoryBlobBytes); },
        visit);
    if (!walked.ok()) {
      GetLogger("blob_store")->warn("pinned tree {}: {}", content::ShortDigest(root),
                                    walked.status().ToString());
    }
  }
  return reachable;
}

GarbageChoice ChooseGarbage(const std::vector<IndexedBlob>& oldest_use_first,
                            const std::set<std::string>& keep, int64_t cutoff_us,
                            int64_t target_bytes, bool only_if_enough) {
  GarbageChoice choice;
  // Unreferenced blobs within their grace, oldest use first: what the size
  // limit may take.
  std::vector<const IndexedBlob*> spare;
  int64_t total = 0;
  for (const IndexedBlob& b : oldest_use_first) {
    total += b.size;
    if (keep.count(b.sha256) != 0) continue;
    if (b.last_used_us < cutoff_us) {
      choice.doomed.push_back(b);
      total -= b.size;
    } else {
      spare.push_back(&b);
    }
  }
  int64_t spare_bytes = 0;
  for (const IndexedBlob* b : spare) spare_bytes += b->size;
  if (only_if_enough && total - spare_bytes > target_bytes) spare.clear();
  for (const IndexedBlob* b : spare) {
    if (total <= target_bytes) break;
    total -= b->size;
    choice.evicted_bytes += b->size;
    choice.doomed.push_back(*b);
  }
  return choice;
}

absl::StatusOr<bool> AdmitUpload(const v1::Digest& digest, int64_t indexed_size, int64_t total,
                                 int64_t max_bytes, bool made_room,
                                 std::set<std::string>* uploading) {
  if (indexed_size == digest.size_bytes()) {
    return absl::AlreadyExistsError(
        absl::StrCat("blob ", content::ShortDigest(digest), " is already stored"));
  }
  if (total + digest.size_bytes() <= max_bytes) {
    if (!uploading->insert(digest.sha256()).second) {
      return absl::AbortedError(absl::StrCat("blob ", content::ShortDigest(digest),
                                             " is being uploaded by another call; try again"));
    }
    return true;
  }
  if (!made_room && digest.size_bytes() <= max_bytes) return false;
  return absl::ResourceExhaustedError(absl::StrCat(
      "the content store is full: it holds ", FormatBytes(static_cast<uint64_t>(total)),
      " and blob ", content::ShortDigest(digest), " (",
      FormatBytes(static_cast<uint64_t>(digest.size_bytes())), ") would pass its limit of ",
      FormatBytes(static_cast<uint64_t>(max_bytes)), " (--blob-store-bytes)",
      made_room ? "; unreferenced blobs cannot make room for it" : ""));
}

}  // namespace musafarm::coordinator
