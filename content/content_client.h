#pragma once

// The client side of ContentService (issue 17): the CLI uploads the blobs of a
// packed tree that the coordinator lacks, the agent fetches blobs by digest.

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "content/local_cas.h"
#include "content/packer.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "musafarm/v1/content_service.grpc.pb.h"

namespace musafarm::content {

// Makes the context of each call: deadlines and credentials are the caller's.
using ContextFactory = std::function<std::unique_ptr<grpc::ClientContext>()>;

struct UploadProgress {
  int64_t files = 0;           // files in the tree
  int64_t blobs_missing = 0;   // blobs the coordinator lacked
  int64_t bytes_to_send = 0;   // their sizes, less what a partial upload already holds
  int64_t bytes_skipped = 0;   // the tree's blobs the coordinator already held
  int64_t bytes_sent = 0;      // acknowledged so far
};

struct UploadOptions {
  ContextFactory context;      // for unary calls (FindMissingBlobs, QueryWriteStatus)
  ContextFactory stream_context;  // for each Write; defaults to `context`
  // Called after the FindMissing round trip and after each acknowledged chunk.
  std::function<void(const UploadProgress&)> progress;
  int64_t chunk_bytes = 1 << 20;
  // Ask about every blob, not only under the directories the coordinator
  // lacks: after it refused a submit for a missing blob (one collected from
  // under a directory it kept).
  bool every_blob = false;
};

// FindMissingBlobs from the root down (only into directories the coordinator
// lacks; every blob with options.every_blob), then a Write of each missing
// one in chunks, files before the directories that hold them; a blob the coordinator holds part of (an earlier, interrupted
// upload) is resumed at its committed size. The first refusal ends it, as the
// server's status with the blob named.
absl::StatusOr<UploadProgress> UploadTree(v1::ContentService::StubInterface& stub,
                                          const PackedTree& tree, const UploadOptions& options);

// Reads the blob `digest` whole into memory (directories), checking its digest.
absl::StatusOr<std::string> FetchBlob(v1::ContentService::StubInterface& stub,
                                      const v1::Digest& digest, const ContextFactory& context);

// Reads the blob `digest` into the file `path` (written as path.part, then
// renamed), checking its digest. `mode`: the file's mode.
absl::Status FetchBlobToFile(v1::ContentService::StubInterface& stub, const v1::Digest& digest,
                             const std::string& path, int mode, const ContextFactory& context);

// A BlobSource reading from ContentService over the channel `channel()`
// returns at each call (the agent's link: its newest channel, which presents
// the current certificate). Thread-safe.
class ChannelBlobSource final : public BlobSource {
 public:
  explicit ChannelBlobSource(std::function<std::shared_ptr<grpc::Channel>()> channel)
      : channel_(std::move(channel)) {}
  absl::StatusOr<std::string> Fetch(const v1::Digest& digest) override;
  absl::Status FetchToFile(const v1::Digest& digest, const std::string& path) override;

 private:
  const std::function<std::shared_ptr<grpc::Channel>()> channel_;
};

}  // namespace musafarm::content
