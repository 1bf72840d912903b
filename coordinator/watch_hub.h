#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "coordinator/log_store.h"
#include "coordinator/user_api.h"
#include "musafarm/v1/farm.pb.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::coordinator {

// The watchers of jobs: what each has seen, a new watcher's snapshot and log
// catch-up, and the fan-out of task changes, log bytes and job ends. It only
// sends; the caller decides when (after the change is durable). Not
// thread-safe: core loop only.
class WatchHub {
 public:
  using WatchId = UserApi::WatchId;

  // `logs` is read for catch-up; not owned, outlives the hub.
  explicit WatchHub(LogStore* logs) : logs_(logs) {}

  // Starts watching `job` (request.task_id() must be one of its tasks or
  // empty): sends the snapshot, then, when asked for logs, every stored byte
  // past request.log_offsets. A job that already ended is then finished, and
  // the watcher is not kept.
  void Add(WatchId id, const v1::WatchJobRequest& request, const v1::Job& job,
           std::shared_ptr<Watcher> watcher);
  void Remove(WatchId id) { watchers_.erase(id); }

  // A task changed (and the change is durable): every watcher of it gets it.
  void PublishTask(const v1::Task& task);
  // New log bytes of the task's attempt from `offset`: each log watcher gets
  // the part it has not seen.
  void PublishLog(const v1::Task& task, uint64_t attempt, uint64_t offset,
                  const std::string& data);
  // The job ended: its watchers get `finished`, their streams end OK, and
  // they are dropped.
  void PublishJobEnd(const v1::Job& job);
  // Ends every stream with `why` (shutdown).
  void FinishAll(const absl::Status& why);

  size_t size() const { return watchers_.size(); }

 private:
  struct Entry {
    std::string job_id;
    std::string task_id;  // filter; empty: all
    bool logs = false;
    struct Sent {
      uint64_t attempt = 0;
      uint64_t bytes = 0;
    };
    // Log bytes sent per task; a new attempt's log starts again from 0.
    std::map<std::string, Sent> sent;
    uint64_t& SentFor(const std::string& task, uint64_t attempt) {
      Sent& s = sent[task];
      if (s.attempt != attempt) s = Sent{attempt, 0};
      return s.bytes;
    }
    std::shared_ptr<Watcher> watcher;
    bool Wants(const v1::Task& task) const {
      return job_id == task.job_id() && (task_id.empty() || task_id == task.id());
    }
  };
  void CatchUpLogs(Entry& w, const v1::Task& task);

  LogStore* const logs_;
  std::map<WatchId, Entry> watchers_;
};

}  // namespace musafarm::coordinator
