#include "coordinator/job_inputs.h"

#include <map>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "pipeline/input_uses.h"
#include "pipeline/stages.h"

namespace musafarm::coordinator {

absl::StatusOr<std::vector<v1::JobInput>> ResolveJobInputs(const v1::SubmitRequest& request,
                                                          BlobStore* blobs, absl::string_view file,
                                                          v1::Job* job) {
  constexpr size_t kMaxInputs = 32;
  constexpr size_t kMaxSourceBytes = 4096;
  if (static_cast<size_t>(request.inputs_size()) > kMaxInputs) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": ", request.inputs_size(),
                                                   " inputs given; the limit is ", kMaxInputs));
  }
  std::map<std::string, v1::JobInput> by_name;
  std::vector<v1::JobInput> out;
  for (const v1::JobInput& in : request.inputs()) {
    if (absl::Status s = pipeline::ValidateInputUseName(in.name()); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": --context: ", s.message()));
    }
    const std::string what = absl::StrCat("input '", in.name(), "'");
    if (by_name.count(in.name()) != 0) {
      return absl::InvalidArgumentError(absl::StrCat(file, ": ", what, " is given twice"));
    }
    if (in.source().size() > kMaxSourceBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat(file, ": ", what, ": source is longer than ", kMaxSourceBytes, " bytes"));
    }
    if (blobs == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": this coordinator has no content store"));
    }
    if (in.tree().sha256().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": ", what, " carries no tree digest (upload its directory first: --context NAME=DIR)"));
    }
    MF_ASSIGN_OR_RETURN(content::TreeStats stats, CheckTreeComplete(*blobs, in.tree(), what));
    v1::JobInput recorded;
    recorded.set_name(in.name());
    *recorded.mutable_tree() = in.tree();
    recorded.set_source(in.source());
    recorded.set_commit(in.commit());  // git inputs: set by the coordinator's resolver
    recorded.set_files(stats.files);
    recorded.set_bytes(stats.bytes);
    by_name[in.name()] = recorded;
    out.push_back(std::move(recorded));
  }
  for (v1::Task& task : *job->mutable_tasks()) {
    v1::StageSpec* run = task.mutable_spec()->mutable_run();
    if (!run->has_docker_build() || run->docker_build().context_input().empty()) continue;
    v1::DockerBuildStage* build = run->mutable_docker_build();
    auto it = by_name.find(build->context_input());
    if (it == by_name.end()) {
      // A cell's own use of a declared input (pipeline/input_uses.h) when the
      // submission carries it, else the input itself: a --context replaced it
      // for every cell, or a schedule stored before uses existed.
      it = by_name.find(std::string(pipeline::DeclaredInputName(build->context_input())));
      if (it != by_name.end()) build->set_context_input(it->first);
    }
    if (it == by_name.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          file, ": stage '", task.spec().stage(), "': context 'input:", build->context_input(),
          "' names an input this submission does not carry (submit --context ",
          build->context_input(), "=DIR)"));
    }
    *build->mutable_context_tree() = it->second.tree();
  }
  return out;
}

}  // namespace musafarm::coordinator
