#include "coordinator/sqlite_schedule_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/secret_cipher.h"
#include "coordinator/sqlite_statement.h"

namespace musafarm::coordinator {
namespace {

using sql::Exec;
using sql::Statement;

int64_t MicrosOf(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000000 + t.nanos() / 1000;
}

absl::StatusOr<Statement> Prepare(sqlite3* db, absl::string_view text) {
  return Statement::Prepare(db, text, /*persistent=*/false);
}

// Binds a schedule row's columns (name, paused, next_fire_us, proto) to ?1..?4
// of `s`; `proto` keeps the bound bytes alive until the statement is reset.
void BindRow(Statement& s, const v1::Schedule& schedule, std::string* proto) {
  v1::Schedule row = schedule;
  row.clear_runs();
  *proto = row.SerializeAsString();
  s.BindText(1, schedule.name());
  s.BindInt64(2, row.paused() ? 1 : 0);
  s.BindInt64(3, MicrosOf(row.next_fire_time()));
  s.BindBlob(4, *proto);
}

}  // namespace

std::string ScheduleSecretContext(const std::string& schedule, const std::string& name) {
  // Job ids are numbers, so "schedule:" never names a job.
  return SecretContext(absl::StrCat("schedule:", schedule), name);
}

template <typename Body>
absl::Status SqliteScheduleStore::InTransaction(const char* what, Body&& body) {
  MF_RETURN_IF_ERROR(Exec(db_, "BEGIN IMMEDIATE", absl::StrCat("begin ", what)));
  absl::Status status = body();
  if (status.ok()) status = Exec(db_, "COMMIT", absl::StrCat("commit ", what));
  if (!status.ok() && !sqlite3_get_autocommit(db_)) {
    (void)Exec(db_, "ROLLBACK", "roll back");  // the first error is the one to report
  }
  return status;
}

absl::Status SqliteScheduleStore::Insert(const v1::Schedule& schedule,
                                         const std::map<std::string, std::string>& secrets) {
  return InTransaction("adding a schedule", [&]() -> absl::Status {
    const v1::Schedule& row = schedule;
    MF_ASSIGN_OR_RETURN(Statement s,
                        Prepare(db_,
                                "INSERT INTO schedules(name, paused, next_fire_us, proto) "
                                "VALUES(?1, ?2, ?3, ?4)"));
    std::string proto;
    BindRow(s, row, &proto);
    int rc = s.Step();
    if ((rc & 0xff) == SQLITE_CONSTRAINT) {
      return absl::AlreadyExistsError(absl::StrCat("schedule '", row.name(), "' exists"));
    }
    if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("add schedule ", row.name()));
    MF_ASSIGN_OR_RETURN(Statement put, Prepare(db_,
                                               "INSERT INTO schedule_secrets(schedule, name, "
                                               "value) VALUES(?1, ?2, ?3)"));
    for (const auto& [name, value] : secrets) {
      std::string stored = value;
      if (cipher_ != nullptr) {
        MF_ASSIGN_OR_RETURN(stored, cipher_->Seal(value, ScheduleSecretContext(row.name(), name)));
      }
      sql::ResetOnExit reset(put);
      put.BindText(1, row.name());
      put.BindText(2, name);
      put.BindBlob(3, stored);
      rc = put.Step();
      if (rc != SQLITE_DONE) {
        return put.Error(rc, absl::StrCat("store secret ", name, " of schedule ", row.name()));
      }
    }
    return absl::OkStatus();
  });
}

absl::Status SqliteScheduleStore::WriteRow(const v1::Schedule& schedule) {
  MF_ASSIGN_OR_RETURN(Statement s, Prepare(db_,
                                           "UPDATE schedules SET paused = ?2, next_fire_us = ?3, "
                                           "proto = ?4 WHERE name = ?1"));
  std::string proto;
  BindRow(s, schedule, &proto);
  int rc = s.Step();
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("update schedule ", schedule.name()));
  if (sqlite3_changes(db_) == 0) {
    return absl::NotFoundError(absl::StrCat("no schedule '", schedule.name(), "'"));
  }
  return absl::OkStatus();
}

absl::Status SqliteScheduleStore::Update(const v1::Schedule& schedule) { return WriteRow(schedule); }

absl::Status SqliteScheduleStore::Delete(const std::string& name) {
  return InTransaction("removing a schedule", [&]() -> absl::Status {
    for (const char* text : {"DELETE FROM schedule_secrets WHERE schedule = ?1",
                             "DELETE FROM schedule_runs WHERE schedule = ?1",
                             "DELETE FROM schedules WHERE name = ?1"}) {
      MF_ASSIGN_OR_RETURN(Statement s, Prepare(db_, text));
      s.BindText(1, name);
      int rc = s.Step();
      if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("remove schedule ", name));
    }
    if (sqlite3_changes(db_) == 0) return absl::NotFoundError(absl::StrCat("no schedule '", name, "'"));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<v1::Schedule>> SqliteScheduleStore::LoadAll() {
  MF_ASSIGN_OR_RETURN(Statement s, Prepare(db_, "SELECT name, proto FROM schedules ORDER BY name"));
  std::vector<v1::Schedule> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    v1::Schedule schedule;
    absl::string_view blob = s.ColumnBlob(1);
    if (!schedule.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      return absl::DataLossError(absl::StrCat("store: \"", path_, "\": schedule '",
                                              s.ColumnText(0), "' does not parse"));
    }
    out.push_back(std::move(schedule));
  }
  if (rc != SQLITE_DONE) return s.Error(rc, "load schedules");
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> SqliteScheduleStore::LoadSecrets(
    const std::string& schedule) {
  MF_ASSIGN_OR_RETURN(Statement s,
                      Prepare(db_, "SELECT name, value FROM schedule_secrets WHERE schedule = ?1"));
  s.BindText(1, schedule);
  std::map<std::string, std::string> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    std::string name(s.ColumnText(0));
    std::string value(s.ColumnBlob(1));
    if (cipher_ != nullptr && SecretCipher::IsSealed(value)) {
      absl::StatusOr<std::string> opened =
          cipher_->Open(value, ScheduleSecretContext(schedule, name));
      if (!opened.ok()) {
        return absl::DataLossError(absl::StrCat("store: secret '", name, "' of schedule '",
                                                schedule, "' in \"", path_,
                                                "\": ", opened.status().message()));
      }
      value = *std::move(opened);
    }
    out.emplace(std::move(name), std::move(value));
  }
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("load secrets of schedule ", schedule));
  return out;
}

absl::Status SqliteScheduleStore::ApplyFire(const ScheduleFire& fire) {
  MF_RETURN_IF_ERROR(WriteRow(fire.schedule));
  MF_ASSIGN_OR_RETURN(Statement s, Prepare(db_,
                                           "INSERT INTO schedule_runs(schedule, slot_us, job_id, "
                                           "proto) VALUES(?1, ?2, ?3, ?4)"));
  const std::string proto = fire.run.SerializeAsString();
  s.BindText(1, fire.schedule.name());
  s.BindInt64(2, MicrosOf(fire.run.scheduled_time()));
  s.BindText(3, fire.run.job_id());
  s.BindBlob(4, proto);
  int rc = s.Step();
  if (rc != SQLITE_DONE) {
    return s.Error(rc, absl::StrCat("record a run of schedule ", fire.schedule.name()));
  }
  return absl::OkStatus();
}

absl::Status SqliteScheduleStore::RecordFire(const ScheduleFire& fire) {
  return InTransaction("recording a schedule's run", [&] { return ApplyFire(fire); });
}

absl::StatusOr<std::vector<v1::ScheduleRun>> SqliteScheduleStore::LastRuns(const std::string& name,
                                                                           int limit) {
  MF_ASSIGN_OR_RETURN(Statement s, Prepare(db_,
                                           "SELECT proto FROM schedule_runs WHERE schedule = ?1 "
                                           "ORDER BY seq DESC LIMIT ?2"));
  s.BindText(1, name);
  s.BindInt64(2, limit);
  std::vector<v1::ScheduleRun> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) {
    v1::ScheduleRun run;
    absl::string_view blob = s.ColumnBlob(0);
    if (!run.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      return absl::DataLossError(
          absl::StrCat("store: \"", path_, "\": a run of schedule '", name, "' does not parse"));
    }
    out.push_back(std::move(run));
  }
  if (rc != SQLITE_DONE) return s.Error(rc, absl::StrCat("load runs of schedule ", name));
  return out;
}

absl::StatusOr<std::vector<std::string>> SqliteScheduleStore::RecentJobIds(int per_schedule) {
  // The newest runs with a job, per schedule: a window function over the
  // schedule_runs_schedule index.
  MF_ASSIGN_OR_RETURN(Statement s,
                      Prepare(db_,
                              "SELECT job_id FROM (SELECT job_id, ROW_NUMBER() OVER (PARTITION BY "
                              "schedule ORDER BY seq DESC) AS n FROM schedule_runs WHERE job_id != "
                              "'') WHERE n <= ?1"));
  s.BindInt64(1, per_schedule);
  std::vector<std::string> out;
  int rc;
  while ((rc = s.Step()) == SQLITE_ROW) out.emplace_back(s.ColumnText(0));
  if (rc != SQLITE_DONE) return s.Error(rc, "load the recent runs of schedules");
  return out;
}

}  // namespace musafarm::coordinator
