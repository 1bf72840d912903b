#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "musafarm/v1/farm.pb.h"

namespace musafarm::coordinator {

// One recorded task state change: the audit trail behind `musafarm status`.
struct Transition {
  std::string task_id;
  uint64_t attempt_id = 0;
  v1::TaskState from = v1::TASK_STATE_UNSPECIFIED;
  v1::TaskState to = v1::TASK_STATE_UNSPECIFIED;
  int64_t at_us = 0;
  std::string reason;
};

// Everything one coordinator event changed. Committed as one transaction, so a
// crash leaves either all of it or none of it.
struct Mutation {
  std::vector<v1::Job> jobs;    // job rows to upsert; Job.tasks is ignored here
  std::vector<v1::Task> tasks;  // task rows to upsert
  std::vector<Transition> transitions;
  std::vector<v1::Agent> agents;  // agent rows to upsert (by name)
  // Secret values of a job (job id, name -> value), kept apart from every row
  // that is ever shown, and dropped (overwritten on disk) when the job ends.
  std::vector<std::pair<std::string, std::map<std::string, std::string>>> job_secrets;
  std::vector<std::string> drop_secrets;  // job ids
  bool empty() const {
    return jobs.empty() && tasks.empty() && transitions.empty() && agents.empty() &&
           job_secrets.empty() && drop_secrets.empty();
  }
};

// Durable farm state. Called only from the coordinator's core loop, so
// implementations need not be thread-safe. SQLite is the embedded default; a
// PostgreSQL backend for highly available coordinators can implement the same.
class Store {
 public:
  virtual ~Store() = default;

  // Applies `m` atomically and durably: once it returns OK, a crash or restart
  // keeps all of it.
  virtual absl::Status Commit(const Mutation& m) = 0;

  // Every job, oldest first, each with its tasks in the order first inserted.
  virtual absl::StatusOr<std::vector<v1::Job>> LoadJobs() = 0;

  // Every agent ever seen, by name.
  virtual absl::StatusOr<std::vector<v1::Agent>> LoadAgents() = 0;

  // The secrets of every job that has not dropped them: job id -> name -> value.
  virtual absl::StatusOr<std::map<std::string, std::map<std::string, std::string>>>
  LoadSecrets() = 0;

  // The transitions of one task, oldest first.
  virtual absl::StatusOr<std::vector<Transition>> LoadTransitions(const std::string& task_id) = 0;
};

// Opens (creating if needed) an SQLite database at `path` (":memory:" for tests)
// in WAL mode with synchronous=FULL, and migrates its schema.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace musafarm::coordinator
