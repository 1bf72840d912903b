#pragma once

// `submit --context NAME=DIR` (issue 17): packs each directory into a content
// tree and uploads the blobs the coordinator lacks, before the job is
// submitted with the trees' digests.

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/client.h"
#include "grpcpp/channel.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::cli {

// "NAME=DIR" -> name and directory; INVALID_ARGUMENT naming the flag.
absl::StatusOr<std::pair<std::string, std::string>> ParseContextFlag(const std::string& flag);

// Packs and, unless `dry_run`, uploads each of `contexts` over `channel`
// ("NAME=DIR"; DIR relative to the working directory). A directory over the
// coordinator's limit (ContentService.GetLimits) is refused before anything
// is read or sent. On a TTY (env.tty) a progress line is redrawn on env.err;
// either way one summary line per context is written there. `every_blob`:
// see UploadOptions.
absl::StatusOr<std::vector<v1::JobInput>> UploadContexts(
    const CommandEnv& env, const std::shared_ptr<grpc::Channel>& channel,
    const std::vector<std::string>& contexts, bool dry_run, bool every_blob = false);

}  // namespace musafarm::cli
