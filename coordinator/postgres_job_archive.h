#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/job_archive.h"
#include "coordinator/pg_connection.h"

namespace musafarm::coordinator {

// JobArchive over the PostgreSQL store's connection (postgres_store.h). Owned
// by the PostgreSQL Store, whose Commit writes the job rows. Not thread-safe:
// core loop only.
class PostgresJobArchive final : public JobArchive {
 public:
  explicit PostgresJobArchive(pg::Connection* conn) : conn_(conn) {}

  // Every job with its tasks, oldest first: Store::LoadJobs (backups, tests).
  absl::StatusOr<std::vector<v1::Job>> LoadAllJobs();

  absl::StatusOr<std::vector<v1::Job>> LoadUnfinishedJobs() override;
  absl::StatusOr<v1::Job> LoadJob(const std::string& id) override;
  absl::StatusOr<std::vector<v1::Job>> ListJobs(const JobFilter& filter) override;
  absl::StatusOr<int64_t> MaxJobNumber() override;
  absl::StatusOr<std::vector<FinishedJob>> ExpiredByAge(absl::Time now, absl::Duration default_age,
                                                        int limit) override;
  absl::StatusOr<std::vector<FinishedJob>> OldestFinished(int limit) override;
  absl::StatusOr<uint64_t> FinishedBytes() override;
  absl::Status DeleteFinishedJobs(const std::vector<std::string>& ids) override;
  absl::StatusOr<std::vector<std::string>> PendingImageDeletions(int limit) override;
  absl::Status ImagesDeleted(const std::vector<std::string>& images) override;
  absl::StatusOr<bool> ImageReferenced(const std::string& image) override;
  uint64_t rows_read() const override { return rows_read_; }

 private:
  // Decodes job rows (id, proto) into `out`.
  absl::Status ReadJobs(const pg::Result& r, std::vector<v1::Job>* out);
  // Appends task rows (job_id, proto) to their jobs in `jobs`.
  absl::Status ReadTasks(const pg::Result& r, std::vector<v1::Job>* jobs);
  absl::StatusOr<std::vector<v1::Job>> LoadWithTasks(const pg::Query& jobs,
                                                     const pg::Query& tasks);
  std::vector<FinishedJob> ReadFinished(const pg::Result& r);
  // Deletes one finished job's rows; its pushed images go to `images`.
  absl::Status DeleteOne(const std::string& id, std::vector<std::string>* images);

  pg::Connection* const conn_;  // the store's; not owned
  uint64_t rows_read_ = 0;
};

}  // namespace musafarm::coordinator
