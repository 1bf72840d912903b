#pragma once

#include <string>
#include <vector>

#include "absl/time/time.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// Which jobs a listing returns (`musafarm jobs --state --name --user --since
// --older-than`, the dashboard's filters), newest first. Empty fields match
// every job. The store applies it in its query (JobArchive::ListJobs);
// JobMatches applies the same to a job held in memory, whose state may be
// newer than its stored header.
struct JobFilter {
  std::vector<v1::JobState> states;                    // any of these
  std::string name_contains;                           // a substring of the name
  std::string submitter;                               // exact user
  absl::Time created_after = absl::InfinitePast();     // created at or after
  absl::Time created_before = absl::InfiniteFuture();  // created before
  int limit = 50;                                      // <= 0: 50
};

// Whether `job` passes `filter` (limit aside).
bool JobMatches(const JobFilter& filter, const v1::Job& job);

}  // namespace musafarm::coordinator
