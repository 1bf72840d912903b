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
#include "absl/time/time.h"
#include "common/clock.h"
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
//
// Pacing. A watcher that falls behind stays behind by what it lagged while the
// tasks print (on a busy machine the watch path, the CLI above all, gets less
// CPU than the writers, and its delay grew through the whole run). So a
// watcher that keeps up also holds the farm: while it has kPace bytes or more
// unwritten, HoldsAcks says so, and the core holds back the agents' log acks
// of the tasks it watches (their send windows then fill and the tasks block on
// write) until it drains to half of that. A watcher that writes slower than
// kMinRate since its drain notice was asked (a stalled or slow reader: judged
// at each drain notice and at each Judge, the core's tick) holds nothing from
// then on, until a drain notice finds it fast or it is current again: it falls
// behind as above, and the farm runs at its own pace.
// `from` as task events carry it to a watcher that asked for them without
// specs (WatchJobRequest.without_specs): every field but the spec.
void CopyTaskWithoutSpec(const v1::Task& from, v1::Task* to);

class WatchHub {
 public:
  using WatchId = UserApi::WatchId;

  static constexpr uint64_t kWindow = 4 << 20;
  static constexpr uint64_t kCatchUpChunk = 1 << 20;
  static constexpr uint64_t kPace = 1 << 20;
  // Bytes per second a holding watcher must write to keep holding; judged
  // once it has held for kJudgeAfter.
  static constexpr uint64_t kMinRate = 16 << 20;
  static constexpr absl::Duration kJudgeAfter = absl::Milliseconds(50);

  // `logs` is read for catch-up; `clock` times the pacing. Not owned, both
  // outlive the hub.
  explicit WatchHub(LogStore* logs, const Clock* clock = RealClock::Get())
      : logs_(logs), clock_(clock) {}

  // Starts watching `job` (request.task_id() must be one of its tasks or
  // empty): sends the snapshot, then, when asked for logs, every stored byte
  // past request.log_offsets (up to the window; the rest as it drains). A job
  // that already ended is then finished, and the watcher is not kept.
  void Add(WatchId id, const v1::WatchJobRequest& request, const v1::Job& job,
           std::shared_ptr<Watcher> watcher);
  void Remove(WatchId id) { watchers_.erase(id); }
  // The watcher drained (UserApi::WatcherDrained): judges its pace, ends its
  // hold and catches it up.
  void Resume(WatchId id);

  // Pacing (class comment): whether a log watcher of `task` that keeps up has
  // kPace or more unwritten (or is behind), so the task's log acks wait until
  // it drains. Starts its hold (and asks for a drain notice) where one is due.
  bool HoldsAcks(const v1::Task& task);
  // Ends the holds of watchers that have written slower than kMinRate since
  // their drain notice was asked (a stalled one); true when one ended.
  bool Judge();

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
    bool without_specs = false;  // WatchJobRequest.without_specs
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
    // Pacing: whether it may hold the farm (not since it was found slower
    // than kMinRate, until a drain notice finds it fast or it is current
    // again), whether it
    // holds it now, and the drain notice it was asked for: when, and the log
    // bytes it had to write since (unwritten then, plus what was sent since).
    bool paces = true;
    bool holding = false;
    std::optional<absl::Time> asked_at;
    uint64_t owed = 0;

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
  // Asks w for a drain notice once at most `at_most` bytes are unwritten,
  // timing it from the first ask since the last notice.
  void AskDrain(Entry& w, uint64_t at_most);
  // Whether w has written at least kMinRate since its drain notice was asked
  // (or was asked less than kJudgeAfter ago).
  bool KeepsUp(const Entry& w, absl::Time now) const;
  // Sends a log event, counting it into what w owes its drain notice.
  static void SendLog(Entry& w, v1::WatchEvent ev);
  // Ends the watch with `finished` = `job`.
  static void End(Entry& w, const v1::Job& job);

  LogStore* const logs_;
  const Clock* const clock_;
  std::map<WatchId, Entry> watchers_;
};

}  // namespace musafarm::coordinator
