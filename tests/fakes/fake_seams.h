#pragma once

// Fakes of the coordinator's two seams (AgentEventSink, UserApi) for the
// transport tests. They record what the adapters deliver and on which thread,
// and answer user calls with canned results. The adapters call them on the
// loop thread; the test thread reads them through Await* (no sleeping).

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "coordinator/agent_event_sink.h"
#include "coordinator/enrollment_api.h"
#include "coordinator/user_api.h"

namespace musafarm::testing {

// Records every call; AwaitCalls waits for a count of them.
class CallLog {
 public:
  void Add(std::string call) {
    absl::MutexLock lock(&mu_);
    calls_.push_back(std::move(call));
    threads_.push_back(std::this_thread::get_id());
  }
  // The first `n` calls, once there are that many (or what there is after 30 s,
  // which the test's assertions then report).
  std::vector<std::string> AwaitCalls(size_t n) {
    absl::MutexLock lock(&mu_);
    want_ = n;
    mu_.AwaitWithTimeout(absl::Condition(this, &CallLog::Enough), absl::Seconds(30));
    return std::vector<std::string>(calls_.begin(), calls_.begin() + std::min(n, calls_.size()));
  }
  size_t Count() {
    absl::MutexLock lock(&mu_);
    return calls_.size();
  }
  // Whether every call so far ran on `thread`.
  bool AllOn(std::thread::id thread) {
    absl::MutexLock lock(&mu_);
    return std::all_of(threads_.begin(), threads_.end(),
                       [&](std::thread::id t) { return t == thread; });
  }

 private:
  bool Enough() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return calls_.size() >= want_; }

  absl::Mutex mu_;
  std::vector<std::string> calls_ ABSL_GUARDED_BY(mu_);
  std::vector<std::thread::id> threads_ ABSL_GUARDED_BY(mu_);
  size_t want_ ABSL_GUARDED_BY(mu_) = 0;
};

// Records "connected N", "message N <kind>", "gone N"; keeps the connections.
class FakeAgentEventSink final : public coordinator::AgentEventSink {
 public:
  ConnId OnAgentConnected(std::shared_ptr<coordinator::AgentConnection> conn) override {
    ConnId id = 0;
    {
      absl::MutexLock lock(&mu_);
      id = next_id_++;
      conns_[id] = std::move(conn);
    }
    calls.Add("connected " + std::to_string(id));
    return id;
  }
  void OnAgentMessage(ConnId conn, const v1::AgentMessage& msg) override {
    if (on_message) {
      on_message(msg);
      return;
    }
    calls.Add("message " + std::to_string(conn) + " " + msg.ShortDebugString());
  }
  void OnAgentGone(ConnId conn) override { calls.Add("gone " + std::to_string(conn)); }

  std::shared_ptr<coordinator::AgentConnection> Connection(ConnId id) {
    absl::MutexLock lock(&mu_);
    return conns_[id];
  }

  CallLog calls;
  // Set before any stream connects: messages go to it instead of `calls`
  // (which would print every byte of a big one). Runs on the loop.
  std::function<void(const v1::AgentMessage&)> on_message;

 private:
  absl::Mutex mu_;
  ConnId next_id_ ABSL_GUARDED_BY(mu_) = 1;
  std::map<ConnId, std::shared_ptr<coordinator::AgentConnection>> conns_ ABSL_GUARDED_BY(mu_);
};

// Answers every user call with `status` when it is an error, else with a
// canned result that echoes the request; records each call with its argument.
class FakeUserApi final : public coordinator::UserApi {
 public:
  absl::StatusOr<v1::Job> Submit(const v1::SubmitRequest& request, const std::string& submitter,
                                 std::optional<coordinator::AuditEntry> audit) override {
    calls.Add("Submit " + request.name() + (submitter.empty() ? "" : " by " + submitter));
    if (on_submit) on_submit();
    if (!status.ok()) return status;
    if (audit.has_value() && audit_store != nullptr) {
      // As the core does: the call's audit line in the job's commit.
      coordinator::Mutation m;
      audit->target = "7";
      m.audit.push_back(*std::move(audit));
      if (absl::Status s = audit_store->Commit(m); !s.ok()) return s;
    }
    v1::Job job;
    job.set_id("7");
    job.set_submitter(submitter);
    job.set_name(request.name());
    return job;
  }
  absl::StatusOr<v1::Job> GetJob(const std::string& job_id) const override {
    calls.Add("GetJob " + job_id);
    if (!status.ok()) return status;
    v1::Job job;
    job.set_id(job_id);
    job.set_created_us(kCreatedUs);
    job.add_tasks()->set_started_us(kCreatedUs + 1500000);
    return job;
  }
  std::vector<v1::Job> ListJobs(const coordinator::JobFilter& filter) const override {
    calls.Add("ListJobs " + std::to_string(filter.limit) +
              (filter.submitter.empty() ? "" : " " + filter.submitter));
    std::vector<v1::Job> jobs(2);
    jobs[0].set_id("2");
    jobs[1].set_id("1");
    return jobs;
  }
  // Job and task ids starting "theirs" belong to "someone-else", the rest to `owner`.
  absl::StatusOr<std::string> OwnerOf(const std::string& id) const override {
    if (id.rfind("theirs", 0) == 0) return std::string("someone-else");
    return owner;
  }
  absl::StatusOr<v1::CancelResponse> Cancel(const std::string& id) override {
    calls.Add("Cancel " + id);
    if (!status.ok()) return status;
    return v1::CancelResponse();
  }
  absl::StatusOr<v1::Job> Rerun(const v1::RerunRequest& request,
                                const std::string& submitter) override {
    calls.Add("Rerun " + request.job_id() + (request.failed_only() ? " failed" : "") +
              (submitter.empty() ? "" : " by " + submitter));
    if (!status.ok()) return status;
    v1::Job job;
    job.set_id("8");
    job.set_submitter(submitter);
    job.set_rerun_of(request.job_id());
    return job;
  }
  std::vector<v1::Agent> ListAgents() const override {
    calls.Add("ListAgents");
    std::vector<v1::Agent> agents(1);
    agents[0].set_name("builder-1");
    agents[0].set_last_seen_us(kCreatedUs);
    return agents;
  }
  absl::StatusOr<v1::Agent> Drain(const std::string& agent, bool undrain) override {
    calls.Add("Drain " + agent + (undrain ? " undrain" : ""));
    if (!status.ok()) return status;
    v1::Agent a;
    a.set_name(agent);
    return a;
  }
  absl::StatusOr<v1::RevokeAgentResponse> RevokeAgent(const std::string& agent) override {
    calls.Add("RevokeAgent " + agent);
    if (!status.ok()) return status;
    v1::RevokeAgentResponse r;
    r.mutable_agent()->set_name(agent);
    r.mutable_agent()->set_revoked(true);
    r.mutable_agent()->set_last_seen_us(kCreatedUs);
    return r;
  }
  absl::StatusOr<v1::GetLogResponse> GetLog(const v1::GetLogRequest& request) override {
    calls.Add("GetLog " + request.task_id());
    if (!status.ok()) return status;
    v1::GetLogResponse r;
    r.set_data("log of " + request.task_id());
    return r;
  }
  absl::StatusOr<v1::GetArtifactResponse> GetArtifact(
      const v1::GetArtifactRequest& request) override {
    calls.Add("GetArtifact " + request.name());
    if (!status.ok()) return status;
    return v1::GetArtifactResponse();
  }
  absl::Status AddWatcher(WatchId id, const v1::WatchJobRequest& request,
                          std::shared_ptr<coordinator::Watcher> watcher) override {
    if (status.ok()) {
      absl::MutexLock lock(&mu_);
      watchers_[id] = std::move(watcher);
    }
    // Recorded last: a test that saw the call finds the watcher.
    calls.Add("AddWatcher " + request.job_id());
    return status;
  }
  void RemoveWatcher(WatchId id) override { calls.Add("RemoveWatcher " + std::to_string(id)); }

  std::shared_ptr<coordinator::Watcher> Watcher(WatchId id) {
    absl::MutexLock lock(&mu_);
    return watchers_[id];
  }

  static constexpr int64_t kCreatedUs = 1796119200000000;  // 2026-12-01T10:00:00Z
  absl::Status status;  // set before the call under test
  std::string owner;    // what OwnerOf answers for ids not starting "theirs"
  // Where a Submit commits the audit line it is given (the core commits it
  // with the job); none: dropped.
  coordinator::Store* audit_store = nullptr;
  std::function<void()> on_submit;  // set before the call under test; runs in Submit
  mutable CallLog calls;

 private:
  absl::Mutex mu_;
  std::map<WatchId, std::shared_ptr<coordinator::Watcher>> watchers_ ABSL_GUARDED_BY(mu_);
};

// Records "Enroll NAME", "Renew chain=<bytes of PEM>"; answers with `status`
// when it is an error, else a canned certificate.
class FakeEnrollmentApi final : public coordinator::EnrollmentApi {
 public:
  absl::StatusOr<v1::EnrollResponse> Enroll(const v1::EnrollRequest& request,
                                            const std::string& peer) override {
    calls.Add("Enroll " + request.name() + (peer.empty() ? " no peer" : ""));
    if (!status.ok()) return status;
    v1::EnrollResponse r;
    r.set_certificate_pem("cert for " + request.name());
    return r;
  }
  absl::StatusOr<v1::RenewCertificateResponse> Renew(const std::string& peer_chain_pem,
                                                     const v1::RenewCertificateRequest& request,
                                                     const std::string& /*peer*/) override {
    calls.Add("Renew chain=" + std::to_string(peer_chain_pem.size()) + " " + request.csr_pem());
    if (!status.ok()) return status;
    v1::RenewCertificateResponse r;
    r.set_certificate_pem("renewed");
    return r;
  }

  absl::Status status;  // set before the call under test
  mutable CallLog calls;
};

}  // namespace musafarm::testing
