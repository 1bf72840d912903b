#include "coordinator/postgres_job_archive.h"

#include <algorithm>
#include <unordered_map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace musafarm::coordinator {
namespace {

using pg::Params;
using pg::Query;
using pg::Result;

constexpr int kDefaultListLimit = 50;

constexpr Query kAllJobs{"archive_all_jobs", "SELECT id, proto FROM jobs ORDER BY seq"};
constexpr Query kAllTasks{"archive_all_tasks", "SELECT job_id, proto FROM tasks ORDER BY seq"};
// RUNNING is 1 (v1.JobState); the jobs_state index finds them.
constexpr Query kUnfinishedJobs{"archive_unfinished_jobs",
                                "SELECT id, proto FROM jobs WHERE state = 1 ORDER BY seq"};
constexpr Query kUnfinishedTasks{"archive_unfinished_tasks",
                                 "SELECT t.job_id, t.proto FROM jobs j JOIN tasks t ON "
                                 "t.job_id = j.id WHERE j.state = 1 ORDER BY t.seq"};
constexpr Query kLoadJob{"archive_load_job", "SELECT id, proto FROM jobs WHERE id = $1"};
constexpr Query kLoadJobTasks{"archive_load_job_tasks",
                              "SELECT job_id, proto FROM tasks WHERE job_id = $1 ORDER BY seq"};
// Ids are decimal numbers; anything else (none the coordinator makes) counts 0.
constexpr Query kMaxJobNumber{
    "archive_max_job_number",
    "SELECT greatest((SELECT coalesce(max(CASE WHEN id ~ '^[0-9]{1,18}$' THEN id::bigint END), 0) "
    "FROM jobs), (SELECT coalesce(max(value), 0) FROM counters WHERE name = 'max_job_number'))"};
// $1 now, $2 whether the farm has an age, $3 now minus the farm's age.
constexpr Query kExpired{
    "archive_expired",
    "SELECT id, ended_us, retention_s, stored_bytes FROM jobs WHERE state != 1 AND "
    "((retention_s > 0 AND ended_us < $1 - retention_s * 1000000) OR "
    "(retention_s = 0 AND $2 AND ended_us < $3)) ORDER BY ended_us, seq LIMIT $4"};
constexpr Query kOldest{"archive_oldest",
                        "SELECT id, ended_us, retention_s, stored_bytes FROM jobs WHERE state != 1 "
                        "ORDER BY ended_us, seq LIMIT $1"};
constexpr Query kFinishedBytes{
    "archive_finished_bytes",
    "SELECT coalesce(sum(stored_bytes), 0)::bigint FROM jobs WHERE state != 1"};
constexpr Query kJobState{"archive_job_state", "SELECT state FROM jobs WHERE id = $1"};
constexpr Query kJobImages{"archive_job_images", "SELECT image FROM job_images WHERE job_id = $1"};
constexpr Query kImageReferenced{"archive_image_referenced",
                                 "SELECT 1 FROM job_images WHERE image = $1 LIMIT 1"};
constexpr Query kRecordMax{"archive_record_max",
                           "INSERT INTO counters(name, value) VALUES('max_job_number', $1) "
                           "ON CONFLICT(name) DO UPDATE SET value = "
                           "greatest(counters.value, excluded.value)"};
// Children first: the foreign keys are checked statement by statement.
constexpr Query kDeleteJobRows[] = {
    {"archive_delete_transitions",
     "DELETE FROM transitions WHERE task_id IN (SELECT id FROM tasks WHERE job_id = $1)"},
    {"archive_delete_tasks", "DELETE FROM tasks WHERE job_id = $1"},
    {"archive_delete_secrets", "DELETE FROM job_secrets WHERE job_id = $1"},
    {"archive_delete_webhooks", "DELETE FROM job_webhooks WHERE job_id = $1"},
    {"archive_delete_images", "DELETE FROM job_images WHERE job_id = $1"},
    {"archive_delete_job", "DELETE FROM jobs WHERE id = $1"},
};
constexpr Query kQueueImage{"archive_queue_image",
                            "INSERT INTO image_outbox(image) VALUES($1) ON CONFLICT DO NOTHING"};
constexpr Query kPendingImages{"archive_pending_images",
                               "SELECT image FROM image_outbox ORDER BY seq LIMIT $1"};
constexpr Query kImageDeleted{"archive_image_deleted", "DELETE FROM image_outbox WHERE image = $1"};

}  // namespace

absl::Status PostgresJobArchive::ReadJobs(const Result& r, std::vector<v1::Job>* out) {
  for (int i = 0; i < r.rows(); ++i) {
    ++rows_read_;
    absl::string_view blob = r.Bytes(i, 1);
    v1::Job& job = out->emplace_back();
    if (!job.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      return absl::DataLossError(absl::StrCat("store: job ", r.Bytes(i, 0), " has a corrupt proto"));
    }
    job.clear_tasks();
  }
  return absl::OkStatus();
}

absl::Status PostgresJobArchive::ReadTasks(const Result& r, std::vector<v1::Job>* jobs) {
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < jobs->size(); ++i) index[(*jobs)[i].id()] = i;
  for (int i = 0; i < r.rows(); ++i) {
    ++rows_read_;
    auto it = index.find(r.String(i, 0));
    if (it == index.end()) {  // a job inserted between the two queries
      continue;
    }
    absl::string_view blob = r.Bytes(i, 1);
    v1::Task* task = (*jobs)[it->second].add_tasks();
    if (!task->ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      return absl::DataLossError(
          absl::StrCat("store: a task of job ", (*jobs)[it->second].id(), " has a corrupt proto"));
    }
  }
  return absl::OkStatus();
}

// Two queries rather than a join: each table is read once, in its own order,
// and tasks are appended to their job by id.
absl::StatusOr<std::vector<v1::Job>> PostgresJobArchive::LoadWithTasks(const Query& jobs_q,
                                                                       const Query& tasks_q) {
  std::vector<v1::Job> jobs;
  MF_ASSIGN_OR_RETURN(Result jr, conn_->Run(jobs_q, Params(), "load jobs"));
  MF_RETURN_IF_ERROR(ReadJobs(jr, &jobs));
  MF_ASSIGN_OR_RETURN(Result tr, conn_->Run(tasks_q, Params(), "load tasks"));
  MF_RETURN_IF_ERROR(ReadTasks(tr, &jobs));
  return jobs;
}

absl::StatusOr<std::vector<v1::Job>> PostgresJobArchive::LoadAllJobs() {
  return LoadWithTasks(kAllJobs, kAllTasks);
}

absl::StatusOr<std::vector<v1::Job>> PostgresJobArchive::LoadUnfinishedJobs() {
  return LoadWithTasks(kUnfinishedJobs, kUnfinishedTasks);
}

absl::StatusOr<v1::Job> PostgresJobArchive::LoadJob(const std::string& id) {
  std::vector<v1::Job> jobs;
  MF_ASSIGN_OR_RETURN(Result jr, conn_->Run(kLoadJob, Params().Text(id), "load job"));
  MF_RETURN_IF_ERROR(ReadJobs(jr, &jobs));
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
  MF_ASSIGN_OR_RETURN(Result tr, conn_->Run(kLoadJobTasks, Params().Text(id), "load job tasks"));
  MF_RETURN_IF_ERROR(ReadTasks(tr, &jobs));
  return std::move(jobs.front());
}

absl::StatusOr<std::vector<v1::Job>> PostgresJobArchive::ListJobs(const JobFilter& filter) {
  // Built per call: which conditions apply varies. Every value is bound.
  std::string where = "TRUE";
  Params p;
  int n = 0;
  std::vector<std::string> states;
  for (v1::JobState state : filter.states) states.push_back(absl::StrCat(static_cast<int>(state)));
  if (!states.empty()) absl::StrAppend(&where, " AND state IN (", absl::StrJoin(states, ","), ")");
  // strpos, not LIKE: the substring is matched as typed, '%' and '_' included.
  if (!filter.name_contains.empty()) {
    absl::StrAppend(&where, " AND strpos(name, $", ++n, ") > 0");
    p.Text(filter.name_contains);
  }
  if (!filter.submitter.empty()) {
    absl::StrAppend(&where, " AND submitter = $", ++n);
    p.Text(filter.submitter);
  }
  if (filter.created_after != absl::InfinitePast()) {
    absl::StrAppend(&where, " AND created_us >= $", ++n, "::bigint");
    p.Int(absl::ToUnixMicros(filter.created_after));
  }
  if (filter.created_before != absl::InfiniteFuture()) {
    absl::StrAppend(&where, " AND created_us < $", ++n, "::bigint");
    p.Int(absl::ToUnixMicros(filter.created_before));
  }
  p.Int(filter.limit > 0 ? filter.limit : kDefaultListLimit);
  MF_ASSIGN_OR_RETURN(Result r, conn_->RunOnce(absl::StrCat("SELECT id, proto FROM jobs WHERE ",
                                                            where, " ORDER BY seq DESC LIMIT $",
                                                            ++n, "::bigint"),
                                               p, "list jobs"));
  std::vector<v1::Job> out;
  MF_RETURN_IF_ERROR(ReadJobs(r, &out));
  return out;
}

absl::StatusOr<int64_t> PostgresJobArchive::MaxJobNumber() {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kMaxJobNumber, Params(), "max job number"));
  return r.Int(0, 0);
}

std::vector<FinishedJob> PostgresJobArchive::ReadFinished(const Result& r) {
  std::vector<FinishedJob> out;
  for (int i = 0; i < r.rows(); ++i) {
    ++rows_read_;
    FinishedJob& j = out.emplace_back();
    j.id = r.String(i, 0);
    j.ended_us = r.Int(i, 1);
    j.retention_seconds = r.Int(i, 2);
    j.stored_bytes = static_cast<uint64_t>(r.Int(i, 3));
  }
  return out;
}

absl::StatusOr<std::vector<FinishedJob>> PostgresJobArchive::ExpiredByAge(
    absl::Time now, absl::Duration default_age, int limit) {
  const int64_t now_us = absl::ToUnixMicros(now);
  const bool has_default = default_age != absl::InfiniteDuration();
  Params p;
  p.Int(now_us).Bool(has_default);
  p.Int(has_default ? now_us - absl::ToInt64Microseconds(default_age) : 0).Int(limit);
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kExpired, p, "list expired jobs"));
  return ReadFinished(r);
}

absl::StatusOr<std::vector<FinishedJob>> PostgresJobArchive::OldestFinished(int limit) {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kOldest, Params().Int(limit), "list finished jobs"));
  return ReadFinished(r);
}

absl::StatusOr<uint64_t> PostgresJobArchive::FinishedBytes() {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kFinishedBytes, Params(), "sum of finished jobs' bytes"));
  return static_cast<uint64_t>(r.Int(0, 0));
}

absl::Status PostgresJobArchive::DeleteOne(const std::string& id,
                                           std::vector<std::string>* images) {
  {
    MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kJobState, Params().Text(id),
                                             absl::StrCat("state of job ", id)));
    if (r.rows() == 0) return absl::OkStatus();  // gone already: deleting is idempotent
    if (r.Int(0, 0) == v1::JOB_STATE_RUNNING) {
      return absl::FailedPreconditionError(
          absl::StrCat("store: job ", id, " has not finished; it cannot be deleted"));
    }
  }
  {
    MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kJobImages, Params().Text(id),
                                             absl::StrCat("images of job ", id)));
    for (int i = 0; i < r.rows(); ++i) images->push_back(r.String(i, 0));
  }
  int64_t number = 0;
  if (absl::SimpleAtoi(id, &number)) {
    MF_RETURN_IF_ERROR(
        conn_->Run(kRecordMax, Params().Int(number), "record the highest job number").status());
  }
  for (const Query& q : kDeleteJobRows) {
    MF_RETURN_IF_ERROR(conn_->Run(q, Params().Text(id), absl::StrCat("delete job ", id)).status());
  }
  return absl::OkStatus();
}

absl::Status PostgresJobArchive::DeleteFinishedJobs(const std::vector<std::string>& ids) {
  if (ids.empty()) return absl::OkStatus();
  return conn_->InTransaction("delete jobs", [&]() -> absl::Status {
    std::vector<std::string> images;
    for (const std::string& id : ids) MF_RETURN_IF_ERROR(DeleteOne(id, &images));
    for (const std::string& image : images) {
      MF_ASSIGN_OR_RETURN(bool referenced, ImageReferenced(image));
      if (referenced) continue;  // a remaining job pushed the same tag
      MF_RETURN_IF_ERROR(conn_->Run(kQueueImage, Params().Text(image),
                                    absl::StrCat("queue deletion of ", image))
                             .status());
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<std::string>> PostgresJobArchive::PendingImageDeletions(int limit) {
  MF_ASSIGN_OR_RETURN(Result r,
                      conn_->Run(kPendingImages, Params().Int(limit), "list image deletions"));
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.String(i, 0));
  return out;
}

absl::Status PostgresJobArchive::ImagesDeleted(const std::vector<std::string>& images) {
  pg::Batch batch;
  for (const std::string& image : images) {
    batch.Add(kImageDeleted, Params().Text(image), absl::StrCat("dequeue deletion of ", image));
  }
  return conn_->Commit(batch);
}

absl::StatusOr<bool> PostgresJobArchive::ImageReferenced(const std::string& image) {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kImageReferenced, Params().Text(image),
                                           absl::StrCat("references to ", image)));
  return r.rows() > 0;
}

}  // namespace musafarm::coordinator
