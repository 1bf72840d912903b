#pragma once

// `submit --context NAME=DIR` (issue 17): packs each directory into a content
// tree and uploads the blobs the coordinator lacks, before the job is
// submitted with the trees' digests.

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/client.h"
#include "grpcpp/channel.h"
#include "musafarm/v1/farm.pb.h"
#include "pipeline/input_decl.h"
#include "pipeline/spec.h"

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

// The inputs of a submit: each use of a declared input the job's tasks name
// (`uses`, from the compiler: pipeline/input_uses.h; paths taken from
// `pipeline_dir`, the pipeline file's directory; a git use's URL and ref as
// the cell's params made them), a `--context NAME=...` in place of every use
// of NAME, then the other --context flags; joins last, after the inputs they
// are made of. A declared input no task uses is not sent. INVALID_ARGUMENT
// naming the flag or the file's input when a flag is malformed or given
// twice, when a pipeline that declares inputs is given a --context it does
// not declare, or when a declared directory or its explicitly named ignore
// file does not exist.
absl::StatusOr<std::vector<ContextSource>> ContextSources(
    const std::vector<pipeline::InputDecl>& declared, const std::string& pipeline_dir,
    const std::vector<std::string>& flags, const std::vector<pipeline::InputUse>& uses);

// Notes for the submitter when a --context replaces a declared git input
// whose URL or ref uses a param the submitter set (`given_params`): that
// value then selects nothing; the directory is built (e.g. --torch_musa_tag
// with --context torch_musa=DIR).
std::vector<std::string> ReplacedInputNotes(const std::vector<pipeline::InputDecl>& declared,
                                            const std::vector<ContextSource>& sources,
                                            const std::map<std::string, std::string>& given_params);

// The built-in pipeline's directory, from which its inputs' paths are taken
// (../dockerfiles): $MUSAFARM_PIPELINES_DIR, else share/musafarm/pipelines
// beside the binary's bin/ (/usr/share/... for the package), else the
// configured <datadir>/musafarm/pipelines.
std::string BuiltInPipelineDir();

// Packs and, unless `dry_run`, uploads each of `contexts` to the active
// coordinator (directories relative to the working directory). A directory over the
// coordinator's limit (ContentService.GetLimits) is refused before anything
// is read or sent. On a TTY (env.tty) a progress line is redrawn on env.err;
// either way one summary line per context is written there. `every_blob`:
// see UploadOptions.
absl::StatusOr<std::vector<v1::JobInput>> UploadContexts(
    const CommandEnv& env, const std::vector<ContextSource>& contexts, bool dry_run,
    bool every_blob = false);

// Reports UploadContexts' error and returns the exit code: the RPC's for
// transport and access errors, usage (the directory: a link out of it, over
// the limit; or a refused blob) otherwise.
int ReportUploadError(const CommandEnv& env, const absl::Status& status);

}  // namespace musafarm::cli
