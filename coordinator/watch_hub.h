#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "coordinator/log_store.h"
#include "coordinator/user_api.h"
#include "musafarm/v1/farm.pb.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::coordinator {

// The watchers of jobs: what each has seen, a new watcher's snapshot and log
// catch-up, and the fan-out of task changes, log bytes and job ends. It only
// sends; the caller decides when (after the change is durable). Not
// thread-safe: core loop only.
//
// Flow control. Log bytes go to a watcher as they are stored, until it has
// kWindow bytes unwritten (Watcher::UnwrittenLogBytes): a client slower than
// the agents then falls behind. The hub holds nothing for it: it remembers the
// offset each task's log reached the watcher, asks for a drain notice, and
// when the watcher has written half the window (Resume) sends what the store
// holds from those offsets, in messages of up to kCatchUpChunk, until it is
// current again. The tasks it lags in take turns, one message each, and the
// turn carries over from one Resume to the next: tasks that print at once
// share the watcher's pace, so none waits behind another's backlog (which a
// busy task, caught up task by task, could grow for as long as it prints). Task changes meanwhile are kept as the latest state of each
// task and `finished` waits, both sent once the logs are current: a watcher
// that falls behind still gets every byte, in order, before the job's end;
// memory per watcher stays about kWindow plus one message.
class WatchHub {
 public:
  using WatchId = UserApi::WatchId;

  static constexpr uint64_t kWindow = 4 << 20;
  static constexpr uint64_t kCatchUpChunk = 1 << 20;

  // `logs` is read for catch-up; not owned, outlives the hub.
  explicit WatchHub(LogStore* logs) : logs_(logs) {}

  // Starts watching `job` (request.task_id() must be one of its tasks or
  // empty): sends the snapshot, then, when asked for logs, every stored byte
  // past request.log_offsets (up to the window; the rest as it drains). A job
  // that already ended is then finished, and the watcher is not kept.
  void Add(WatchId id, const v1::WatchJobRequest& request, const v1::Job& job,
           std::shared_ptr<Watcher> watcher);
  void Remove(WatchId id) { watchers_.erase(id); }
  // The watcher drained (UserApi::WatcherDrained): catches it up.
  void Resume(WatchId id);

  // A task changed (and the change is durable): every watcher of it gets it.
  void PublishTask(const v1::Task& task);
  // New log bytes of the task's attempt from `offset`, stored: each log
  // watcher gets the part it has not seen.
  void PublishLog(const v1::Task& task, uint64_t attempt, uint64_t offset, absl::string_view data);
  // The job ended: its watchers get `finished`, their streams end OK, and
  // they are dropped.
  void PublishJobEnd(const v1::Job& job);
  // Ends every stream with `why` (shutdown).
  void FinishAll(const absl::Status& why);

  size_t size() const { return watchers_.size(); }

 private:
  struct Sent {
    uint64_t attempt = 0;
    uint64_t bytes = 0;
  };
  struct Entry {
    std::string job_id;
    std::string task_id;  // filter; empty: all
    bool logs = false;
    // Log bytes sent per task; a new attempt's log starts again from 0.
    std::map<std::string, Sent> sent;
    std::shared_ptr<Watcher> watcher;
    // Behind (see the class comment): tasks whose stored log may be ahead of
    // `sent`; earlier attempts not yet sent to their end, oldest first; the
    // latest state of tasks that changed; the job's end.
    bool behind = false;
    std::set<std::string> lagging;
    std::string last_turn;  // the lagging task caught up last: the next one's turn is after it
    std::deque<std::pair<std::string, Sent>> stale;
    std::map<std::string, v1::Task> held_tasks;
    std::optional<v1::Job> held_end;

    uint64_t& SentFor(const std::string& task, uint64_t attempt);
    bool Wants(const v1::Task& task) const {
      return job_id == task.job_id() && (task_id.empty() || task_id == task.id());
    }
  };
  enum class Sending { kDone, kMore, kFull };
  // Sends the stored log of `task` from `s.bytes`: all of it (to its current
  // end) or, with `one_message`, at most one message; kFull when the watcher
  // had no room first, kMore when there is more stored, kDone when not.
  Sending SendStored(Entry& w, const std::string& task, Sent& s, bool one_message);
  // Sends what the watcher lags by, then what was held; the job's end last,
  // and then true: the watcher is done. Falls behind again when it fills up.
  bool CatchUp(Entry& w);
  void FallBehind(Entry& w);
  // Ends the watch with `finished` = `job`.
  static void End(Entry& w, const v1::Job& job);

  LogStore* const logs_;
  std::map<WatchId, Entry> watchers_;
};

}  // namespace musafarm::coordinator
