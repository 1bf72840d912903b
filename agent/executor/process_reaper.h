#pragma once

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "agent/executor/executor.h"
#include "common/subprocess.h"
#include "google/protobuf/repeated_field.h"

namespace musafarm::agent {

// A started process for ProcessReaper::Watch to supervise.
struct WatchedProcess {
  Child child;
  absl::Duration timeout = absl::ZeroDuration();  // zero: none
  absl::Duration grace = absl::Seconds(5);        // SIGTERM to the group -> SIGKILL
  ExecCallbacks callbacks;
  // Once it has ended, unless it was cancelled: CollectFromWorkDir(workdir, collect).
  std::string workdir;
  google::protobuf::RepeatedPtrField<std::string> collect;
  // Its end may block (copying files back, on_exit probing the attempt's
  // GPUs): it then runs on a thread of its own, so that it holds up no other
  // process's output or exit.
  bool slow_end = false;
};

// One thread that supervises every process the exec executor started, where
// there was a thread per attempt (its creation, a stack mapped and unmapped,
// and a 50 ms tick each). It polls each process's output pipe and pidfd
// together, passes output on (on_output) and stops reading a pipe while the
// agent has no room for more (wait_for_room, asked without waiting; asked
// again every millisecond meanwhile: the task then blocks on its full pipe);
// on cancel or at the deadline the process's group gets SIGTERM, then SIGKILL
// after the grace; when the main process exits whatever it left in its group
// is killed, it is reaped, and the pipe is read to its end (for at most 2 s if
// a process that left the group holds it). A process still running at its
// on_running time (ExecCallbacks::running_after) gets that call, once. Callbacks run on this thread (or
// the attempt's own, for a slow end) and must not block, wait_for_room aside,
// which is asked with a zero timeout.
class ProcessReaper {
 public:
  ProcessReaper();
  // Cancels what still runs and waits until each has ended (on_exit returned).
  ~ProcessReaper();
  ProcessReaper(const ProcessReaper&) = delete;
  ProcessReaper& operator=(const ProcessReaper&) = delete;

  // Supervises `process` from now on. The Execution's destructor cancels it
  // and waits for its on_exit to return; it may outlive the reaper.
  std::unique_ptr<Execution> Watch(WatchedProcess process);

 private:
  class Handle;
  struct Entry;
  struct Shared;
  struct Waker;
  struct SlowEnds;

  void Run();
  void End(std::unique_ptr<Entry> entry);

  const std::shared_ptr<Waker> waker_;
  const std::shared_ptr<SlowEnds> slow_ends_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<Entry>> added_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace musafarm::agent
