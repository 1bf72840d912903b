#pragma once

// Joined job inputs (issues 17 and 18): a pipeline's `inputs: {NAME: {join:
// {.: A, sub: B}}}` is one tree made of other inputs of the same submission,
// so that one docker build context can hold the Dockerfiles and scripts the
// CLI uploaded ("." : their top directory) and a source tree that came from
// the submitter's working copy or from git (placed at `sub/`). The CLI sends
// it as source "join:.=A,sub=B"; the coordinator makes the one directory blob
// that joins them, so nothing is copied and the agent fetches by digest as
// for any input.

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "coordinator/blob_store.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::coordinator {

inline constexpr absl::string_view kJoinPrefix = "join:";

bool IsJoinSource(absl::string_view source);

// Gives each input of `request` whose source is "join:PART,..." (PART is
// `.=NAME` or `SUB=NAME`, SUB one path component) and that carries no tree
// its tree: NAME's top directory for ".", with NAME's tree as directory SUB
// for the others (a SUB replaces what "." has of that name). Every NAME must
// be an input of the request that comes before it and has a tree (git
// inputs are resolved first). INVALID_ARGUMENT naming the input and the part
// otherwise; the store's error when its root blob cannot be read or written.
absl::Status ResolveJoinedInputs(BlobStore& blobs, v1::SubmitRequest* request);

}  // namespace musafarm::coordinator
