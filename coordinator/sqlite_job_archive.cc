#include "coordinator/sqlite_job_archive.h"

#include <unordered_map>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace musafarm::coordinator {
namespace {

using sql::Exec;
using sql::ResetOnExit;
using sql::Statement;

constexpr int kDefaultListLimit = 50;
constexpr char kFinishedColumns[] = "id, ended_us, retention_s, stored_bytes";

}  // namespace

absl::Status SqliteJobArchive::Prepare() {
  struct Def {
    Statement* stmt;
    const char* sql;
  };
  const Def defs[] = {
      {&update_job_columns_,
       "UPDATE jobs SET submitter = ?2, stored_bytes = ?3, retention_s = ?4 WHERE id = ?1"},
      {&all_jobs_, "SELECT id, proto FROM jobs ORDER BY seq"},
      {&all_tasks_, "SELECT job_id, proto FROM tasks ORDER BY seq"},
      {&insert_image_, "INSERT OR IGNORE INTO job_images(job_id, image) VALUES(?1, ?2)"},
      // RUNNING is 1 (v1.JobState); the jobs_state index finds them.
      {&unfinished_jobs_, "SELECT id, proto FROM jobs WHERE state = 1 ORDER BY seq"},
      {&unfinished_tasks_,
       "SELECT t.job_id, t.proto FROM jobs j JOIN tasks t ON t.job_id = j.id "
       "WHERE j.state = 1 ORDER BY t.seq"},
      {&load_job_, "SELECT id, proto FROM jobs WHERE id = ?1"},
      {&load_job_tasks_, "SELECT job_id, proto FROM tasks WHERE job_id = ?1 ORDER BY seq"},
      // ?1 now, ?2 whether the farm has an age, ?3 now minus the farm's age.
      {&expired_,
       "SELECT id, ended_us, retention_s, stored_bytes FROM jobs WHERE state != 1 AND "
       "((retention_s > 0 AND ended_us < ?1 - retention_s * 1000000) OR "
       "(retention_s = 0 AND ?2 AND ended_us < ?3)) ORDER BY ended_us, seq LIMIT ?4"},
      {&oldest_,
       "SELECT id, ended_us, retention_s, stored_bytes FROM jobs WHERE state != 1 "
       "ORDER BY ended_us, seq LIMIT ?1"},
      {&job_state_, "SELECT state FROM jobs WHERE id = ?1"},
      {&job_images_, "SELECT image FROM job_images WHERE job_id = ?1"},
      {&image_referenced_, "SELECT 1 FROM job_images WHERE image = ?1 LIMIT 1"},
      {&outbox_, "INSERT OR IGNORE INTO image_outbox(image) VALUES(?1)"},
  };
  for (const Def& d : defs) {
    MF_ASSIGN_OR_RETURN(*d.stmt, Statement::Prepare(db_, d.sql, /*persistent=*/true));
  }
  return absl::OkStatus();
}

absl::Status SqliteJobArchive::OnJobWritten(const v1::Job& job) {
  {
    Statement& s = update_job_columns_;
    ResetOnExit reset(s);
    s.BindText(1, job.id());
    s.BindText(2, job.submitter());
    s.BindInt64(3, static_cast<int64_t>(job.stored_bytes()));
    s.BindInt64(4, job.retention_seconds());
    int rc = s.Step();
    if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("update job ", job.id()));
  }
  for (const std::string& image : job.pushed_images()) {
    Statement& s = insert_image_;
    ResetOnExit reset(s);
    s.BindText(1, job.id());
    s.BindText(2, image);
    int rc = s.Step();
    if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("record images of job ", job.id()));
  }
  return absl::OkStatus();
}

absl::Status SqliteJobArchive::ReadJobs(Statement& s, std::vector<v1::Job>* out) {
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    ++rows_read_;
    absl::string_view id = s.ColumnText(0);
    absl::string_view blob = s.ColumnBlob(1);
    v1::Job& job = out->emplace_back();
    if (!job.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      return absl::DataLossError(absl::StrCat("store: job ", id, " has a corrupt proto"));
    }
    job.clear_tasks();
  }
  if (rc != SQLITE_DONE) return s.Error(rc, "load jobs");
  return absl::OkStatus();
}

absl::Status SqliteJobArchive::ReadTasks(Statement& s, std::vector<v1::Job>* jobs) {
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < jobs->size(); ++i) index[(*jobs)[i].id()] = i;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    ++rows_read_;
    auto it = index.find(std::string(s.ColumnText(0)));
    if (it == index.end()) {  // only if someone wrote the file with foreign keys off
      return absl::DataLossError(absl::StrCat("store: a task row refers to job ", s.ColumnText(0),
                                              ", which has no row"));
    }
    absl::string_view blob = s.ColumnBlob(1);
    v1::Task* task = (*jobs)[it->second].add_tasks();
    if (!task->ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      return absl::DataLossError(
          absl::StrCat("store: a task of job ", (*jobs)[it->second].id(), " has a corrupt proto"));
    }
  }
  if (rc != SQLITE_DONE) return s.Error(rc, "load tasks");
  return absl::OkStatus();
}

// Two queries rather than a join: each table is read once, in its own order,
// and tasks are appended to their job by id.
absl::StatusOr<std::vector<v1::Job>> SqliteJobArchive::LoadWithTasks(Statement& job_rows,
                                                                     Statement& task_rows) {
  std::vector<v1::Job> jobs;
  {
    ResetOnExit reset(job_rows);
    MF_RETURN_IF_ERROR(ReadJobs(job_rows, &jobs));
  }
  ResetOnExit reset(task_rows);
  MF_RETURN_IF_ERROR(ReadTasks(task_rows, &jobs));
  return jobs;
}

absl::StatusOr<std::vector<v1::Job>> SqliteJobArchive::LoadAllJobs() {
  return LoadWithTasks(all_jobs_, all_tasks_);
}

absl::StatusOr<std::vector<v1::Job>> SqliteJobArchive::LoadUnfinishedJobs() {
  return LoadWithTasks(unfinished_jobs_, unfinished_tasks_);
}

absl::StatusOr<v1::Job> SqliteJobArchive::LoadJob(const std::string& id) {
  std::vector<v1::Job> jobs;
  {
    ResetOnExit reset(load_job_);
    load_job_.BindText(1, id);
    MF_RETURN_IF_ERROR(ReadJobs(load_job_, &jobs));
  }
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("no job '", id, "'"));
  ResetOnExit reset(load_job_tasks_);
  load_job_tasks_.BindText(1, id);
  MF_RETURN_IF_ERROR(ReadTasks(load_job_tasks_, &jobs));
  return std::move(jobs.front());
}

absl::StatusOr<std::vector<v1::Job>> SqliteJobArchive::ListJobs(const JobFilter& filter) {
  // Built per call: which conditions apply varies. Every value is bound.
  std::string where = "1";
  std::vector<std::string> states;
  for (v1::JobState state : filter.states) states.push_back(absl::StrCat(static_cast<int>(state)));
  if (!states.empty()) absl::StrAppend(&where, " AND state IN (", absl::StrJoin(states, ","), ")");
  // instr, not LIKE: the substring is matched as typed, '%' and '_' included.
  if (!filter.name_contains.empty()) absl::StrAppend(&where, " AND instr(name, ?1) > 0");
  if (!filter.submitter.empty()) absl::StrAppend(&where, " AND submitter = ?2");
  if (filter.created_after != absl::InfinitePast()) absl::StrAppend(&where, " AND created_us >= ?3");
  if (filter.created_before != absl::InfiniteFuture()) {
    absl::StrAppend(&where, " AND created_us < ?5");
  }
  MF_ASSIGN_OR_RETURN(
      Statement s,
      Statement::Prepare(db_,
                         absl::StrCat("SELECT id, proto FROM jobs WHERE ", where,
                                      " ORDER BY seq DESC LIMIT ?4"),
                         /*persistent=*/false));
  if (!filter.name_contains.empty()) s.BindText(1, filter.name_contains);
  if (!filter.submitter.empty()) s.BindText(2, filter.submitter);
  if (filter.created_after != absl::InfinitePast()) {
    s.BindInt64(3, absl::ToUnixMicros(filter.created_after));
  }
  s.BindInt64(4, filter.limit > 0 ? filter.limit : kDefaultListLimit);
  if (filter.created_before != absl::InfiniteFuture()) {
    s.BindInt64(5, absl::ToUnixMicros(filter.created_before));
  }
  std::vector<v1::Job> out;
  MF_RETURN_IF_ERROR(ReadJobs(s, &out));
  return out;
}

absl::StatusOr<int64_t> SqliteJobArchive::MaxJobNumber() {
  // Ids are decimal numbers; the counter keeps the highest of expired jobs.
  MF_ASSIGN_OR_RETURN(int64_t in_jobs,
                      sql::QueryInt(db_, "SELECT ifnull(max(CAST(id AS INTEGER)), 0) FROM jobs",
                                    "max job number"));
  MF_ASSIGN_OR_RETURN(
      int64_t expired,
      sql::QueryInt(db_,
                    "SELECT ifnull(max(value), 0) FROM counters WHERE name = 'max_job_number'",
                    "max job number"));
  return std::max(in_jobs, expired);
}

absl::StatusOr<std::vector<FinishedJob>> SqliteJobArchive::ReadFinished(Statement& s) {
  std::vector<FinishedJob> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    ++rows_read_;
    FinishedJob& j = out.emplace_back();
    j.id = std::string(s.ColumnText(0));
    j.ended_us = s.ColumnInt64(1);
    j.retention_seconds = s.ColumnInt64(2);
    j.stored_bytes = static_cast<uint64_t>(s.ColumnInt64(3));
  }
  if (rc != SQLITE_DONE) return s.Error(rc, "list finished jobs");
  return out;
}

absl::StatusOr<std::vector<FinishedJob>> SqliteJobArchive::ExpiredByAge(absl::Time now,
                                                                        absl::Duration default_age,
                                                                        int limit) {
  const int64_t now_us = absl::ToUnixMicros(now);
  const bool has_default = default_age != absl::InfiniteDuration();
  Statement& s = expired_;
  ResetOnExit reset(s);
  s.BindInt64(1, now_us);
  s.BindInt64(2, has_default ? 1 : 0);
  s.BindInt64(3, has_default ? now_us - absl::ToInt64Microseconds(default_age) : 0);
  s.BindInt64(4, limit);
  return ReadFinished(s);
}

absl::StatusOr<std::vector<FinishedJob>> SqliteJobArchive::OldestFinished(int limit) {
  Statement& s = oldest_;
  ResetOnExit reset(s);
  s.BindInt64(1, limit);
  return ReadFinished(s);
}

absl::StatusOr<uint64_t> SqliteJobArchive::FinishedBytes() {
  MF_ASSIGN_OR_RETURN(
      int64_t sum,
      sql::QueryInt(db_, "SELECT ifnull(sum(stored_bytes), 0) FROM jobs WHERE state != 1",
                    "sum of finished jobs' bytes"));
  return static_cast<uint64_t>(sum);
}

absl::Status SqliteJobArchive::DeleteOne(const std::string& id, std::vector<std::string>* images) {
  {
    Statement& s = job_state_;
    ResetOnExit reset(s);
    s.BindText(1, id);
    int rc = s.Step();
    if (rc == SQLITE_DONE) return absl::OkStatus();  // gone already: deleting is idempotent
    if (rc != SQLITE_ROW) return s.Error(rc, absl::StrCat("state of job ", id));
    if (s.ColumnInt64(0) == v1::JOB_STATE_RUNNING) {
      return absl::FailedPreconditionError(
          absl::StrCat("store: job ", id, " has not finished; it cannot be deleted"));
    }
  }
  {
    Statement& s = job_images_;
    ResetOnExit reset(s);
    s.BindText(1, id);
    int rc;
    while ((rc = s.Step()) == SQLITE_ROW) images->emplace_back(s.ColumnText(0));
    if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("images of job ", id));
  }
  int64_t number = 0;
  if (absl::SimpleAtoi(id, &number)) {
    MF_ASSIGN_OR_RETURN(Statement s, Statement::Prepare(db_,
                                                        "INSERT INTO counters(name, value) "
                                                        "VALUES('max_job_number', ?1) "
                                                        "ON CONFLICT(name) DO UPDATE SET "
                                                        "value = max(value, excluded.value)",
                                                        /*persistent=*/false));
    s.BindInt64(1, number);
    int rc = s.Step();
    if (rc != SQLITE_DONE) return s.Error(rc, "record the highest job number");
  }
  // Children first: the foreign keys are checked statement by statement.
  for (const char* sql :
       {"DELETE FROM transitions WHERE task_id IN (SELECT id FROM tasks WHERE job_id = ?1)",
        "DELETE FROM tasks WHERE job_id = ?1", "DELETE FROM job_secrets WHERE job_id = ?1",
        "DELETE FROM job_images WHERE job_id = ?1", "DELETE FROM jobs WHERE id = ?1"}) {
    MF_ASSIGN_OR_RETURN(Statement s, Statement::Prepare(db_, sql, /*persistent=*/false));
    s.BindText(1, id);
    int rc = s.Step();
    if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("delete job ", id));
  }
  return absl::OkStatus();
}

absl::Status SqliteJobArchive::DeleteFinishedJobs(const std::vector<std::string>& ids) {
  if (ids.empty()) return absl::OkStatus();
  MF_RETURN_IF_ERROR(Exec(db_, "BEGIN IMMEDIATE", "begin deleting jobs"));
  absl::Status status = [&]() -> absl::Status {
    std::vector<std::string> images;
    for (const std::string& id : ids) MF_RETURN_IF_ERROR(DeleteOne(id, &images));
    for (const std::string& image : images) {
      MF_ASSIGN_OR_RETURN(bool referenced, ImageReferenced(image));
      if (referenced) continue;  // a remaining job pushed the same tag
      Statement& s = outbox_;
      ResetOnExit reset(s);
      s.BindText(1, image);
      int rc = s.Step();
      if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("queue deletion of ", image));
    }
    return Exec(db_, "COMMIT", "commit deleting jobs");
  }();
  if (!status.ok() && !sqlite3_get_autocommit(db_)) {
    (void)Exec(db_, "ROLLBACK", "roll back deleting jobs");  // the first error is the one to report
  }
  return status;
}

absl::StatusOr<std::vector<std::string>> SqliteJobArchive::PendingImageDeletions(int limit) {
  MF_ASSIGN_OR_RETURN(Statement s,
                      Statement::Prepare(db_, "SELECT image FROM image_outbox ORDER BY rowid LIMIT ?1",
                                         /*persistent=*/false));
  s.BindInt64(1, limit);
  std::vector<std::string> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.emplace_back(s.ColumnText(0));
  if (rc != SQLITE_DONE) return s.Error(rc, "list image deletions");
  return out;
}

absl::Status SqliteJobArchive::ImagesDeleted(const std::vector<std::string>& images) {
  MF_ASSIGN_OR_RETURN(Statement s,
                      Statement::Prepare(db_, "DELETE FROM image_outbox WHERE image = ?1",
                                         /*persistent=*/false));
  for (const std::string& image : images) {
    ResetOnExit reset(s);
    s.BindText(1, image);
    int rc = s.Step();
    if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("dequeue deletion of ", image));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> SqliteJobArchive::ImageReferenced(const std::string& image) {
  Statement& s = image_referenced_;
  ResetOnExit reset(s);
  s.BindText(1, image);
  int rc = s.Step();
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return s.Error(rc, absl::StrCat("references to ", image));
}

}  // namespace musafarm::coordinator
