#pragma once

#include <map>
#include <string>
#include <vector>

#include "coordinator/pg_connection.h"
#include "coordinator/schedule_store.h"

namespace musafarm::coordinator {

class SecretCipher;

// ScheduleStore over the PostgreSQL store's connection (schedules,
// schedule_secrets, schedule_runs; postgres_store.h). Owned by the PostgreSQL
// Store, which adds a fire's statements to its Commit batch (AddFire). Not
// thread-safe: core loop only.
class PostgresScheduleStore final : public ScheduleStore {
 public:
  // `cipher` seals secret values at rest (not owned).
  PostgresScheduleStore(pg::Connection* conn, const SecretCipher* cipher)
      : conn_(conn), cipher_(cipher) {}

  // Adds the fire's statements (the schedule's new row, which must exist, and
  // its run row) to `batch`.
  static void AddFire(const ScheduleFire& fire, pg::Batch* batch);

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
  pg::Connection* const conn_;  // the store's; not owned
  const SecretCipher* const cipher_;
};

}  // namespace musafarm::coordinator
