#pragma once

// A submission's inputs (issue 17): the trees its docker_build stages name as
// `context: input:NAME`, checked against the content store.

#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "coordinator/blob_store.h"
#include "musafarm/v1/farm.pb.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::coordinator {

// Checks `request.inputs()` and returns them as the job records them: names
// valid and unique, every blob of each tree in `blobs` (FAILED_PRECONDITION
// naming the first missing one), files and bytes as counted here. Sets each
// docker_build's context_tree in `job`'s tasks from the input it names (its
// use in the cell, "NAME@AXIS=VALUE", when the request carries that, else
// "NAME"; the task then names the one it builds);
// INVALID_ARGUMENT, naming the stage, when it names one the request lacks.
// `file` names the pipeline in messages. `blobs` may be null (no content
// store): then any input is refused.
absl::StatusOr<std::vector<v1::JobInput>> ResolveJobInputs(const v1::SubmitRequest& request,
                                                          BlobStore* blobs, absl::string_view file,
                                                          v1::Job* job);

}  // namespace musafarm::coordinator
