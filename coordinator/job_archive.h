#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/job_filter.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// A finished job as retention sees it (coordinator/retention_policy.h).
struct FinishedJob {
  std::string id;
  int64_t ended_us = 0;
  int64_t retention_seconds = 0;  // the job's own age limit; 0: the farm's
  uint64_t stored_bytes = 0;
};

// The jobs of a store, read on demand: the coordinator holds only unfinished
// jobs in memory and reads finished ones from here (GetJob, ListJobs, logs,
// artifacts, watching an ended job), and retention deletes them from here.
// Called only from the core loop, like Store. Job rows are written through
// Store::Commit; this interface only reads them and deletes finished ones.
class JobArchive {
 public:
  virtual ~JobArchive() = default;

  // Every job not yet finished (state RUNNING), oldest first, with its tasks
  // in the order first inserted. What the coordinator loads at start.
  virtual absl::StatusOr<std::vector<v1::Job>> LoadUnfinishedJobs() = 0;

  // One job with its tasks; NOT_FOUND when there is none.
  virtual absl::StatusOr<v1::Job> LoadJob(const std::string& id) = 0;

  // Jobs matching `filter`, newest first, without their tasks.
  virtual absl::StatusOr<std::vector<v1::Job>> ListJobs(const JobFilter& filter) = 0;

  // The highest numeric job id ever stored, expired jobs included (0 when
  // none): a job id is never given twice.
  virtual absl::StatusOr<int64_t> MaxJobNumber() = 0;

  // --- retention ---------------------------------------------------------

  // Finished jobs past their age at `now` (each its own retention_seconds, or
  // `default_age` when it has none; InfiniteDuration: kept forever), oldest
  // ended first, at most `limit`.
  virtual absl::StatusOr<std::vector<FinishedJob>> ExpiredByAge(absl::Time now,
                                                                absl::Duration default_age,
                                                                int limit) = 0;
  // The oldest-ended finished jobs, at most `limit`.
  virtual absl::StatusOr<std::vector<FinishedJob>> OldestFinished(int limit) = 0;
  // The sum of stored_bytes over finished jobs.
  virtual absl::StatusOr<uint64_t> FinishedBytes() = 0;

  // Deletes the finished jobs `ids` (rows of the jobs, their tasks,
  // transitions and secrets) in one transaction. Pushed images no remaining
  // job names join the registry outbox in the same transaction. Unfinished
  // jobs among `ids` are refused (FAILED_PRECONDITION) and nothing changes.
  virtual absl::Status DeleteFinishedJobs(const std::vector<std::string>& ids) = 0;

  // Registry images waiting to be deleted (the outbox), at most `limit`.
  virtual absl::StatusOr<std::vector<std::string>> PendingImageDeletions(int limit) = 0;
  // Images deleted from their registry (or not the farm's): out of the outbox.
  virtual absl::Status ImagesDeleted(const std::vector<std::string>& images) = 0;
  // Whether any stored job (finished or not) names `image` as pushed.
  virtual absl::StatusOr<bool> ImageReferenced(const std::string& image) = 0;

  // Job and task rows decoded since the store opened, by every read (this
  // interface's and Store::LoadJobs): the hook the 100,000-job startup test
  // counts with.
  virtual uint64_t rows_read() const = 0;
};

}  // namespace musafarm::coordinator
