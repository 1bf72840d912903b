#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "coordinator/job_archive.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// What the coordinator keeps of finished jobs (--retain, --retain-bytes; a
// pipeline's `retention:` overrides the age for its jobs).
struct RetentionOptions {
  absl::Duration max_age = absl::InfiniteDuration();  // --retain; infinite: no age limit
  uint64_t max_bytes = 0;  // --retain-bytes over all finished jobs; 0: no size limit
  // A pass deletes at most this many jobs, in one short transaction, so
  // dispatch never waits long behind it; the next pass goes on.
  int batch = 50;
  absl::Duration interval = absl::Minutes(1);  // between passes
  // The farm's registries ("host:port"): only images there are deleted.
  std::vector<std::string> registries;
};

// Decides which finished jobs one retention pass deletes: first every job in
// `by_age` (already past its age), then, while the finished jobs' bytes stay
// above `max_bytes`, the oldest-ended of `oldest`. Never a job in `pinned`
// (e.g. the previous run a schedule compares with). At most `limit` ids, in
// the order given.
std::vector<std::string> ChooseExpired(const std::vector<FinishedJob>& by_age,
                                       const std::vector<FinishedJob>& oldest,
                                       uint64_t finished_bytes, uint64_t max_bytes,
                                       const std::set<std::string>& pinned, int limit);

// The images a job pushes to a registry: docker_build tags with `push`, and
// docker_push images. Sorted, unique.
std::vector<std::string> PushedImages(const v1::Job& job);

// Whether `image` ("host:port/name:tag") lives in one of `registries`.
bool InRegistry(const std::string& image, const std::vector<std::string>& registries);

}  // namespace musafarm::coordinator
