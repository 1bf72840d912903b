#include "coordinator/postgres_schedule_store.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/secret_cipher.h"
#include "coordinator/sqlite_schedule_store.h"

namespace musafarm::coordinator {
namespace {

using pg::Params;
using pg::Query;
using pg::Result;

int64_t MicrosOf(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000000 + t.nanos() / 1000;
}

// A schedule row's columns (name, paused, next_fire_us, proto) as $1..$4.
Params RowParams(const v1::Schedule& schedule) {
  v1::Schedule row = schedule;
  row.clear_runs();
  Params p;
  p.Text(schedule.name()).Bool(row.paused()).Int(MicrosOf(row.next_fire_time()));
  p.Bytes(row.SerializeAsString());
  return p;
}

std::string NoSchedule(const std::string& name) { return absl::StrCat("no schedule '", name, "'"); }

constexpr Query kInsert{"schedule_insert",
                        "INSERT INTO schedules(name, paused, next_fire_us, proto) "
                        "VALUES($1, $2, $3, $4)"};
constexpr Query kInsertSecret{"schedule_insert_secret",
                              "INSERT INTO schedule_secrets(schedule, name, value) "
                              "VALUES($1, $2, $3)"};
constexpr Query kUpdate{"schedule_update",
                        "UPDATE schedules SET paused = $2, next_fire_us = $3, proto = $4 "
                        "WHERE name = $1"};
// The same, failing its transaction when there is no such schedule ($5 says so).
constexpr Query kUpdateExisting{"schedule_update_existing",
                                "WITH u AS (UPDATE schedules SET paused = $2, next_fire_us = $3, "
                                "proto = $4 WHERE name = $1 RETURNING 1) "
                                "SELECT musafarm_require_row(count(*), $5) FROM u"};
constexpr Query kInsertRun{"schedule_insert_run",
                           "INSERT INTO schedule_runs(schedule, slot_us, job_id, proto) "
                           "VALUES($1, $2, $3, $4)"};
constexpr Query kDeleteSecrets{"schedule_delete_secrets",
                               "DELETE FROM schedule_secrets WHERE schedule = $1"};
constexpr Query kDeleteRuns{"schedule_delete_runs", "DELETE FROM schedule_runs WHERE schedule = $1"};
constexpr Query kDeleteRow{"schedule_delete_row",
                           "WITH d AS (DELETE FROM schedules WHERE name = $1 RETURNING 1) "
                           "SELECT musafarm_require_row(count(*), $2) FROM d"};
constexpr Query kLoadAll{"schedule_load_all", "SELECT name, proto FROM schedules ORDER BY name"};
constexpr Query kLoadSecrets{"schedule_load_secrets",
                             "SELECT name, value FROM schedule_secrets WHERE schedule = $1"};
constexpr Query kLastRuns{"schedule_last_runs",
                          "SELECT proto FROM schedule_runs WHERE schedule = $1 "
                          "ORDER BY seq DESC LIMIT $2"};
// The newest runs with a job, per schedule: a window over the (schedule, seq) index.
constexpr Query kRecentJobIds{"schedule_recent_job_ids",
                              "SELECT job_id FROM (SELECT job_id, ROW_NUMBER() OVER (PARTITION BY "
                              "schedule ORDER BY seq DESC) AS n FROM schedule_runs WHERE job_id != "
                              "'') AS r WHERE n <= $1"};

}  // namespace

void PostgresScheduleStore::AddFire(const ScheduleFire& fire, pg::Batch* batch) {
  const std::string& name = fire.schedule.name();
  batch->Add(kUpdateExisting, RowParams(fire.schedule).Text(NoSchedule(name)),
             absl::StrCat("update schedule ", name));
  Params run;
  run.Text(name).Int(MicrosOf(fire.run.scheduled_time())).Text(fire.run.job_id());
  run.Bytes(fire.run.SerializeAsString());
  batch->Add(kInsertRun, std::move(run), absl::StrCat("record a run of schedule ", name));
}

absl::Status PostgresScheduleStore::Insert(const v1::Schedule& schedule,
                                           const std::map<std::string, std::string>& secrets) {
  pg::Batch batch;
  batch.Add(kInsert, RowParams(schedule), absl::StrCat("add schedule ", schedule.name()));
  for (const auto& [name, value] : secrets) {
    MF_ASSIGN_OR_RETURN(std::string sealed,
                        cipher_->Seal(value, ScheduleSecretContext(schedule.name(), name)));
    batch.Add(kInsertSecret, Params().Text(schedule.name()).Text(name).Bytes(sealed),
              absl::StrCat("store secret ", name, " of schedule ", schedule.name()));
  }
  absl::Status s = conn_->Commit(batch);
  if (absl::IsAlreadyExists(s)) {
    return absl::AlreadyExistsError(absl::StrCat("schedule '", schedule.name(), "' exists"));
  }
  return s;
}

absl::Status PostgresScheduleStore::Update(const v1::Schedule& schedule) {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kUpdate, RowParams(schedule),
                                           absl::StrCat("update schedule ", schedule.name())));
  if (r.affected() == 0) return absl::NotFoundError(NoSchedule(schedule.name()));
  return absl::OkStatus();
}

absl::Status PostgresScheduleStore::Delete(const std::string& name) {
  pg::Batch batch;
  const std::string what = absl::StrCat("remove schedule ", name);
  batch.Add(kDeleteSecrets, Params().Text(name), what);
  batch.Add(kDeleteRuns, Params().Text(name), what);
  batch.Add(kDeleteRow, Params().Text(name).Text(NoSchedule(name)), what);
  absl::Status s = conn_->Commit(batch);
  if (absl::IsNotFound(s)) return absl::NotFoundError(NoSchedule(name));
  return s;
}

absl::StatusOr<std::vector<v1::Schedule>> PostgresScheduleStore::LoadAll() {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLoadAll, Params(), "load schedules"));
  std::vector<v1::Schedule> out;
  for (int i = 0; i < r.rows(); ++i) {
    v1::Schedule& schedule = out.emplace_back();
    absl::string_view blob = r.Bytes(i, 1);
    if (!schedule.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      return absl::DataLossError(absl::StrCat("store: \"", conn_->where(), "\": schedule '",
                                              r.Bytes(i, 0), "' does not parse"));
    }
  }
  return out;
}

absl::StatusOr<std::map<std::string, std::string>> PostgresScheduleStore::LoadSecrets(
    const std::string& schedule) {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLoadSecrets, Params().Text(schedule),
                                           absl::StrCat("load secrets of schedule ", schedule)));
  std::map<std::string, std::string> out;
  for (int i = 0; i < r.rows(); ++i) {
    std::string name = r.String(i, 0);
    absl::StatusOr<std::string> opened =
        cipher_->Open(r.Bytes(i, 1), ScheduleSecretContext(schedule, name));
    if (!opened.ok()) {
      return absl::DataLossError(absl::StrCat("store: secret '", name, "' of schedule '", schedule,
                                              "' in \"", conn_->where(),
                                              "\": ", opened.status().message()));
    }
    out.emplace(std::move(name), *std::move(opened));
  }
  return out;
}

absl::Status PostgresScheduleStore::RecordFire(const ScheduleFire& fire) {
  pg::Batch batch;
  AddFire(fire, &batch);
  return conn_->Commit(batch);
}

absl::StatusOr<std::vector<v1::ScheduleRun>> PostgresScheduleStore::LastRuns(
    const std::string& name, int limit) {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kLastRuns, Params().Text(name).Int(limit),
                                           absl::StrCat("load runs of schedule ", name)));
  std::vector<v1::ScheduleRun> out;
  for (int i = 0; i < r.rows(); ++i) {
    v1::ScheduleRun& run = out.emplace_back();
    absl::string_view blob = r.Bytes(i, 0);
    if (!run.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
      return absl::DataLossError(absl::StrCat("store: \"", conn_->where(), "\": a run of schedule '",
                                              name, "' does not parse"));
    }
  }
  return out;
}

absl::StatusOr<std::vector<std::string>> PostgresScheduleStore::RecentJobIds(int per_schedule) {
  MF_ASSIGN_OR_RETURN(Result r, conn_->Run(kRecentJobIds, Params().Int(per_schedule),
                                           "load the recent runs of schedules"));
  std::vector<std::string> out;
  for (int i = 0; i < r.rows(); ++i) out.push_back(r.String(i, 0));
  return out;
}

}  // namespace musafarm::coordinator
