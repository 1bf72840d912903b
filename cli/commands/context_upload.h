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
#include "pipeline/input_decl.h"

namespace musafarm::cli {

// "NAME=DIR" -> name and directory; INVALID_ARGUMENT naming the flag.
absl::StatusOr<std::pair<std::string, std::string>> ParseContextFlag(const std::string& flag);

// One input a submit sends: a directory to pack or a git URL for the
// coordinator to resolve.
struct ContextSource {
  std::string name;
  std::string source;  // a directory, or a git URL (git+https://, git+file://, git://)
  std::string ignore_file = ".dockerignore";  // inside the directory; "" for none
  // How messages name where it came from: "--context src" or
  // "p.yaml:3:3: inputs.src".
  std::string origin;
};

// The inputs of a submit: the pipeline's declared ones (their paths taken
// from `pipeline_dir`, the pipeline file's directory), each replaced by a
// `--context NAME=...` of the same name, then the other --context flags.
// INVALID_ARGUMENT naming the flag or the file's input when a flag is
// malformed or given twice, when a pipeline that declares inputs is given a
// --context it does not declare, or when a declared directory or its
// explicitly named ignore file does not exist.
absl::StatusOr<std::vector<ContextSource>> ContextSources(
    const std::vector<pipeline::InputDecl>& declared, const std::string& pipeline_dir,
    const std::vector<std::string>& flags);

// Packs and, unless `dry_run`, uploads each of `contexts` over `channel`
// (directories relative to the working directory). A directory over the
// coordinator's limit (ContentService.GetLimits) is refused before anything
// is read or sent. On a TTY (env.tty) a progress line is redrawn on env.err;
// either way one summary line per context is written there. `every_blob`:
// see UploadOptions.
absl::StatusOr<std::vector<v1::JobInput>> UploadContexts(
    const CommandEnv& env, const std::shared_ptr<grpc::Channel>& channel,
    const std::vector<ContextSource>& contexts, bool dry_run, bool every_blob = false);

}  // namespace musafarm::cli
