#include "coordinator/job_filter.h"

#include <algorithm>

#include "absl/strings/match.h"

namespace musafarm::coordinator {

bool JobMatches(const JobFilter& filter, const v1::Job& job) {
  if (!filter.states.empty() &&
      std::find(filter.states.begin(), filter.states.end(), job.state()) == filter.states.end()) {
    return false;
  }
  if (!absl::StrContains(job.name(), filter.name_contains)) return false;
  if (!filter.submitter.empty() && job.submitter() != filter.submitter) return false;
  const absl::Time created = absl::FromUnixMicros(job.created_us());
  return created >= filter.created_after && created < filter.created_before;
}

}  // namespace musafarm::coordinator
