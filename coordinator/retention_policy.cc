#include "coordinator/retention_policy.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace musafarm::coordinator {

std::vector<std::string> ChooseExpired(const std::vector<FinishedJob>& by_age,
                                       const std::vector<FinishedJob>& oldest,
                                       uint64_t finished_bytes, uint64_t max_bytes,
                                       const std::set<std::string>& pinned, int limit) {
  std::vector<std::string> out;
  std::set<std::string> chosen;
  uint64_t bytes = finished_bytes;
  auto take = [&](const FinishedJob& j) {
    if (static_cast<int>(out.size()) >= limit || pinned.count(j.id) != 0 ||
        !chosen.insert(j.id).second) {
      return;
    }
    out.push_back(j.id);
    bytes -= std::min(bytes, j.stored_bytes);
  };
  for (const FinishedJob& j : by_age) take(j);
  if (max_bytes == 0) return out;
  for (const FinishedJob& j : oldest) {
    if (bytes <= max_bytes) break;
    take(j);
  }
  return out;
}

std::vector<std::string> PushedImages(const v1::Job& job) {
  std::set<std::string> images;
  for (const v1::Task& task : job.tasks()) {
    const v1::StageSpec& run = task.spec().run();
    if (run.has_docker_build() && run.docker_build().push()) {
      images.insert(run.docker_build().tags().begin(), run.docker_build().tags().end());
    } else if (run.has_docker_push()) {
      images.insert(run.docker_push().images().begin(), run.docker_push().images().end());
    }
  }
  images.erase("");
  return {images.begin(), images.end()};
}

bool InRegistry(const std::string& image, const std::vector<std::string>& registries) {
  return std::any_of(registries.begin(), registries.end(), [&](const std::string& r) {
    return !r.empty() && absl::StartsWith(image, absl::StrCat(r, "/"));
  });
}

}  // namespace musafarm::coordinator
