// Spec parsing and expansion (pipeline/spec.h) on arbitrary bytes: whatever
// the file, ParseAndExpand and DeclaredOptions return, never crash, and every
// refusal is the documented InvalidArgument "FILE: ..." / "FILE:LINE:COL: ...",
// so the user is told where. The input's first line, when it starts with "#p ",
// holds "name=value" params (';'-separated) so params substitution is reached.
#include <cstdint>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "pipeline/spec.h"
#include "tests/fuzz/fuzz_check.h"

namespace {

constexpr absl::string_view kFile = "fuzz/p.yaml";

void CheckRefusal(const absl::Status& s) {
  if (s.ok()) return;
  const std::string message(s.message());
  MF_FUZZ_CHECK(s.code() == absl::StatusCode::kInvalidArgument, "code %d: %s",
                static_cast<int>(s.code()), message.c_str());
  MF_FUZZ_CHECK(absl::StartsWith(message, kFile), "message does not name the file: %s",
                message.c_str());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view yaml(reinterpret_cast<const char*>(data), size);
  musafarm::pipeline::ExpandOptions options;
  if (absl::StartsWith(yaml, "#p ")) {
    const absl::string_view line = yaml.substr(3, yaml.find('\n') - 3);
    for (absl::string_view kv : absl::StrSplit(line, ';', absl::SkipEmpty())) {
      std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
      options.params[p.first] = p.second;
    }
  }
  auto job = musafarm::pipeline::ParseAndExpand(yaml, kFile, "7", options);
  CheckRefusal(job.status());
  if (job.ok()) {
    MF_FUZZ_CHECK(job->id() == "7", "job id %s", job->id().c_str());
    for (const auto& task : job->tasks()) {
      MF_FUZZ_CHECK(absl::StartsWith(task.id(), "7/"), "task id %s", task.id().c_str());
    }
  }
  CheckRefusal(musafarm::pipeline::DeclaredOptions(yaml, kFile).status());
  return 0;
}
