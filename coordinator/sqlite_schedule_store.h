#pragma once

#include <sqlite3.h>

#include <map>
#include <string>
#include <vector>

#include "coordinator/schedule_store.h"

namespace musafarm::coordinator {

class SecretCipher;

// ScheduleStore over the SQLite store's connection (schema version 7:
// schedules, schedule_secrets, schedule_runs; see sqlite_store.h). Owned by
// the SQLite Store, which calls ApplyFire inside Commit's transaction. Not
// thread-safe: core loop only.
class SqliteScheduleStore final : public ScheduleStore {
 public:
  // `cipher`: seals secret values at rest (not owned; null: in clear, tests).
  SqliteScheduleStore(sqlite3* db, std::string path, const SecretCipher* cipher)
      : db_(db), path_(std::move(path)), cipher_(cipher) {}

  // Writes the fire's run row and the schedule's new row. Inside the caller's
  // transaction (Store::Commit).
  absl::Status ApplyFire(const ScheduleFire& fire);

  absl::Status Insert(const v1::Schedule& schedule,
                      const std::map<std::string, std::string>& secrets) override;
  absl::Status Update(const v1::Schedule& schedule) override;
  absl::Status Delete(const std::string& name) override;
  absl::StatusOr<std::vector<v1::Schedule>> LoadAll() override;
  absl::StatusOr<std::map<std::string, std::string>> LoadSecrets(const std::string& name) override;
  absl::Status RecordFire(const ScheduleFire& fire) override;
  absl::StatusOr<std::vector<v1::ScheduleRun>> LastRuns(const std::string& name,
                                                        int limit) override;
  absl::StatusOr<std::vector<std::string>> RecentJobIds(int per_schedule) override;

 private:
  // Runs `body` in BEGIN IMMEDIATE ... COMMIT; rolls back when it fails.
  template <typename Body>
  absl::Status InTransaction(const char* what, Body&& body);
  // Rewrites the row; NOT_FOUND when there is none.
  absl::Status WriteRow(const v1::Schedule& schedule);

  sqlite3* const db_;  // the store's; not owned
  const std::string path_;
  const SecretCipher* const cipher_;
};

// The context a schedule secret is sealed with: apart from every job's.
std::string ScheduleSecretContext(const std::string& schedule, const std::string& name);

}  // namespace musafarm::coordinator
