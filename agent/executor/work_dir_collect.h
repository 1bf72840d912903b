#pragma once

#include <functional>
#include <string>
#include <vector>

#include "agent/executor/executor.h"
#include "google/protobuf/repeated_field.h"

namespace musafarm::agent {

// Brings back an exec or shell stage's `collect` files (ExecStage.collect,
// issue 16 item 7): each path, relative to `workdir`, is copied to
// `workdir`/artifacts/NAME (NAME its base name, made unique as docker_run's
// are), so that the agent redacts and sends its own copy. A path never leaves
// the work dir: ".." and absolute paths are refused (also at submit), and it
// is opened one component at a time with O_NOFOLLOW, so no symbolic link is
// followed, in or out. Only regular files are collected. Each path that is
// not collected gets a line through `say` (for the task's log) saying why;
// a missing file is not an error of the attempt.
std::vector<CollectedFile> CollectFromWorkDir(
    const std::string& workdir, const google::protobuf::RepeatedPtrField<std::string>& paths,
    const std::function<void(const std::string&)>& say);

}  // namespace musafarm::agent
