#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "coordinator/job_filter.h"
#include "coordinator/store.h"
#include "musafarm/v1/user_service.pb.h"

namespace musafarm::coordinator {

// One WatchJob stream. Thread-safe; never blocks (events are queued).
class Watcher {
 public:
  virtual ~Watcher() = default;
  virtual void Send(v1::WatchEvent event) = 0;
  virtual void Finish(const absl::Status& status) = 0;
  // `event`, the last, then the end: a watcher that can sends both in one
  // write (issue 19: the job's end reaches `submit --watch` with its trailers).
  virtual void SendLast(v1::WatchEvent event, const absl::Status& status) {
    Send(std::move(event));
    Finish(status);
  }

  // Flow control of log bytes (WatchHub): a watcher that cannot write as fast
  // as logs are stored must not make the coordinator hold the whole log for it.
  // The log bytes sent to it that it has not written to its client yet. A
  // watcher that does not count them (0) is never held back.
  virtual uint64_t UnwrittenLogBytes() const { return 0; }
  // Asks for one UserApi::WatcherDrained(its id), on the core loop, once at
  // most `at_most` log bytes are unwritten (at once if that is so already).
  virtual void RequestDrainNotice(uint64_t at_most) { (void)at_most; }
};

// The user calls, as the core answers them: the seam between UserServiceImpl
// (gRPC) and the core, which implements it. Transport tests fake it. Called
// only on the core EventLoop; must not block. Errors use the canonical codes
// (NotFound, InvalidArgument, FailedPrecondition...), which the transport
// passes to the client unchanged.
class UserApi {
 public:
  using WatchId = uint64_t;

  virtual ~UserApi() = default;

  // `submitter`: who submits (the authenticated user), recorded in the job.
  // `audit`, when set, is the call's audit line: it is stored in the job's
  // own commit, its target set to the new job's id, so that one fsync makes
  // both durable before the answer (issue 19). A refused submission stores
  // nothing; its caller records that line.
  virtual absl::StatusOr<v1::Job> Submit(const v1::SubmitRequest& request,
                                         const std::string& submitter,
                                         std::optional<AuditEntry> audit) = 0;
  // What the submitter should hear of a job Submit just accepted (its tasks
  // no connected agent could run): SubmitResponse.warnings.
  virtual std::vector<std::string> SubmitWarnings(const v1::Job& job) {
    (void)job;
    return {};
  }
  // Runs `fn` once every change made so far on this loop is on disk: at once
  // where nothing waits (each change was committed as it was made), else
  // after the commit of the group the caller runs in. Submit's answer waits
  // here: a job commits with the placement of its first tasks (issue 19).
  virtual void WhenDurable(absl::AnyInvocable<void()> fn) { fn(); }
  virtual absl::StatusOr<v1::Job> GetJob(const std::string& job_id) const = 0;
  // A schedule's run (issue 14): the job of the schedule's run before
  // `job`'s, with its tasks, which the nightly diff compares `job` against.
  // NOT_FOUND when `job` is no schedule's run, is its first, or the previous
  // run's job is gone.
  virtual absl::StatusOr<v1::Job> PreviousRun(const v1::Job& job) const {
    (void)job;
    return absl::NotFoundError("no previous run");
  }
  // The jobs `filter` selects, newest first, no tasks.
  virtual std::vector<v1::Job> ListJobs(const JobFilter& filter) const = 0;
  // The submitter of job `id`, or of the job task `id` belongs to ("" when
  // none was recorded). NOT_FOUND when there is no such job or task.
  virtual absl::StatusOr<std::string> OwnerOf(const std::string& id) const = 0;
  virtual absl::StatusOr<v1::CancelResponse> Cancel(const std::string& id) = 0;
  // `musafarm rerun`: a new job of `submitter` with the ended job's tasks as
  // expanded at its submit (with failed_only, only its cells that failed),
  // rerun_of naming it. NOT_FOUND for an unknown or expired job,
  // FAILED_PRECONDITION for one still running or (failed_only) with nothing
  // failed, INVALID_ARGUMENT naming secrets missing (their values are never
  // kept past a job).
  virtual absl::StatusOr<v1::Job> Rerun(const v1::RerunRequest& request,
                                        const std::string& submitter) = 0;
  virtual std::vector<v1::Agent> ListAgents() const = 0;
  virtual absl::StatusOr<v1::Agent> Drain(const std::string& agent, bool undrain) = 0;
  // Revokes every certificate of the agent name and ends its stream.
  virtual absl::StatusOr<v1::RevokeAgentResponse> RevokeAgent(const std::string& agent) = 0;
  virtual absl::StatusOr<v1::GetLogResponse> GetLog(const v1::GetLogRequest& request) = 0;
  virtual absl::StatusOr<v1::GetArtifactResponse> GetArtifact(
      const v1::GetArtifactRequest& request) = 0;
  // Starts sending the job's events to `watcher` under `id` (chosen by the
  // transport). An error means nothing was registered: the transport ends the
  // stream with it.
  virtual absl::Status AddWatcher(WatchId id, const v1::WatchJobRequest& request,
                                  std::shared_ptr<Watcher> watcher) = 0;
  // The stream of `id` ended; the last call naming it.
  virtual void RemoveWatcher(WatchId id) = 0;
  // The watcher `id` has written what held it back (Watcher::RequestDrainNotice):
  // it gets the log bytes stored meanwhile, from the log store.
  virtual void WatcherDrained(WatchId id) { (void)id; }
};

}  // namespace musafarm::coordinator
