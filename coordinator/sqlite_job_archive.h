#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/job_archive.h"
#include "coordinator/sqlite_statement.h"

namespace musafarm::coordinator {

// JobArchive over the SQLite store's connection (schema version 5 adds what it
// needs: the jobs' submitter, stored_bytes and retention_s columns, indexes on
// state and ended_us, job_images, image_outbox and counters; see
// sqlite_store.h). Owned by the SQLite Store, which calls OnJobWritten inside
// Commit's transaction. Not thread-safe: core loop only.
class SqliteJobArchive final : public JobArchive {
 public:
  SqliteJobArchive(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}

  // Prepares the statements; after the schema is migrated.
  absl::Status Prepare();

  // Copies the job's filter and retention fields into their columns and
  // records its pushed images. Called by Commit for every job row it writes,
  // inside its transaction.
  absl::Status OnJobWritten(const v1::Job& job);
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
  // Reads (id, proto) job rows from `s` (stepped here) into `out`.
  absl::Status ReadJobs(sql::Statement& s, std::vector<v1::Job>* out);
  // Appends the tasks rows (job_id, proto) of `s` to their jobs in `jobs`.
  absl::Status ReadTasks(sql::Statement& s, std::vector<v1::Job>* jobs);
  // The jobs of `job_rows` (id, proto) with the tasks of `task_rows` (job_id, proto).
  absl::StatusOr<std::vector<v1::Job>> LoadWithTasks(sql::Statement& job_rows,
                                                     sql::Statement& task_rows);
  absl::StatusOr<std::vector<FinishedJob>> ReadFinished(sql::Statement& s);
  // Deletes one finished job's rows; its pushed images go to `images`.
  absl::Status DeleteOne(const std::string& id, std::vector<std::string>* images);

  sqlite3* const db_;  // the store's; not owned
  const std::string path_;
  uint64_t rows_read_ = 0;

  sql::Statement all_jobs_;
  sql::Statement all_tasks_;
  sql::Statement update_job_columns_;
  sql::Statement insert_image_;
  sql::Statement unfinished_jobs_;
  sql::Statement unfinished_tasks_;
  sql::Statement load_job_;
  sql::Statement load_job_tasks_;
  sql::Statement expired_;
  sql::Statement oldest_;
  sql::Statement job_state_;
  sql::Statement job_images_;
  sql::Statement image_referenced_;
  sql::Statement outbox_;
};

}  // namespace musafarm::coordinator
