#pragma once

// Test only: a scripted UserService for the CLI's tests (commands_test.cc,
// cli_tree_test.cc), run on 127.0.0.1:0, and the jobs and tasks they use.

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "grpcpp/server_context.h"
#include "musafarm/v1/content_service.grpc.pb.h"
#include "musafarm/v1/schedule_service.grpc.pb.h"
#include "musafarm/v1/user_service.grpc.pb.h"

namespace musafarm::cli::fakes {

// Serves `services` on 127.0.0.1:0; *port is the port it got (0: none).
inline std::unique_ptr<grpc::Server> ServeOnLoopback(std::vector<grpc::Service*> services,
                                                     int* port) {
  grpc::ServerBuilder b;
  b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), port);
  for (grpc::Service* s : services) b.RegisterService(s);
  return b.BuildAndStart();
}

inline constexpr int64_t kT0 =
    1'700'000'000'000'000;  // unix microseconds; FakeClock's default start

inline v1::Task MakeTask(const std::string& id, v1::TaskState state, uint64_t attempt = 0,
                         const std::string& agent = "") {
  v1::Task t;
  t.set_id(id);
  t.set_job_id("7");
  t.set_state(state);
  t.set_attempt_id(attempt);
  t.set_agent(agent);
  return t;
}

inline v1::Job MakeJob(v1::JobState state, std::vector<v1::Task> tasks) {
  v1::Job j;
  j.set_id("7");
  j.set_name("demo");
  j.set_state(state);
  j.set_created_us(kT0 - 30'000'000);
  if (state != v1::JOB_STATE_RUNNING) j.set_ended_us(kT0);
  for (v1::Task& t : tasks) *j.add_tasks() = t;
  return j;
}

inline v1::WatchEvent SnapshotEv(v1::Job j) {
  v1::WatchEvent ev;
  *ev.mutable_snapshot() = std::move(j);
  return ev;
}
inline v1::WatchEvent FinishedEv(v1::Job j) {
  v1::WatchEvent ev;
  *ev.mutable_finished() = std::move(j);
  return ev;
}
inline v1::WatchEvent TaskEv(v1::Task t) {
  v1::WatchEvent ev;
  *ev.mutable_task() = std::move(t);
  return ev;
}
inline v1::WatchEvent LogEv(const std::string& task, uint64_t attempt, uint64_t offset,
                            const std::string& data) {
  v1::WatchEvent ev;
  ev.mutable_log()->set_task_id(task);
  ev.mutable_log()->set_attempt_id(attempt);
  ev.mutable_log()->set_offset(offset);
  ev.mutable_log()->set_data(data);
  return ev;
}

// One WatchJob call's worth of events, then the status that ends it.
struct WatchScript {
  std::vector<v1::WatchEvent> events;
  grpc::Status end = grpc::Status::OK;
};

// What FakeUserService answers and what it was asked. Tests set it before a
// command and read it after (a finished call orders those accesses); the
// handlers, which gRPC's sync server may run on several threads at once,
// reach it only through FakeUserService::data_, under its lock.
struct FakeUserServiceData {
  v1::Job job;
  grpc::Status submit_error = grpc::Status::OK;
  std::deque<WatchScript> scripts;
  std::string log;
  bool log_complete = false;
  std::vector<v1::SubmitRequest> submits;
  std::vector<std::string> get_jobs;
  std::vector<v1::WatchJobRequest> watches;
  std::vector<v1::GetLogRequest> get_logs;
  v1::ListJobsRequest list_request;
  std::string cancelled_id;
  std::vector<v1::RerunRequest> reruns;  // answered with `job`, its rerun_of the request's
  std::map<std::string, std::string> artifacts;  // "TASK\nNAME" -> content
  uint64_t artifact_fail_at = UINT64_MAX;        // GetArtifact at this offset fails
  uint64_t artifact_size_lie = 0;                // claimed size minus the real one
  std::vector<v1::GetArtifactRequest> get_artifacts;
};

// A scripted coordinator: records requests, answers from canned data.
// Thread-safe (gRPC's sync server calls it on its own threads).
class FakeUserService final : public v1::UserService::Service, public FakeUserServiceData {
 public:
  grpc::Status Submit(grpc::ServerContext*, const v1::SubmitRequest* req,
                      v1::SubmitResponse* resp) override {
    absl::MutexLock lock(&mu_);
    data_->submits.push_back(*req);
    if (!data_->submit_error.ok()) return data_->submit_error;
    *resp->mutable_job() = data_->job;
    return grpc::Status::OK;
  }
  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest* req, v1::Job* resp) override {
    absl::MutexLock lock(&mu_);
    data_->get_jobs.push_back(req->job_id());
    if (req->job_id() != data_->job.id()) {
      return {grpc::StatusCode::NOT_FOUND, "no job " + req->job_id()};
    }
    *resp = data_->job;
    return grpc::Status::OK;
  }
  grpc::Status ListJobs(grpc::ServerContext*, const v1::ListJobsRequest* req,
                        v1::ListJobsResponse* resp) override {
    absl::MutexLock lock(&mu_);
    data_->list_request = *req;
    v1::Job j = data_->job;
    j.clear_tasks();
    *resp->add_jobs() = j;
    return grpc::Status::OK;
  }
  grpc::Status WatchJob(grpc::ServerContext*, const v1::WatchJobRequest* req,
                        grpc::ServerWriter<v1::WatchEvent>* writer) override {
    WatchScript script;
    {
      absl::MutexLock lock(&mu_);
      data_->watches.push_back(*req);
      if (data_->scripts.empty()) return {grpc::StatusCode::UNAVAILABLE, "no more scripts"};
      script = data_->scripts.front();
      data_->scripts.pop_front();
    }
    for (const v1::WatchEvent& ev : script.events) writer->Write(ev);
    return script.end;
  }
  grpc::Status GetLog(grpc::ServerContext*, const v1::GetLogRequest* req,
                      v1::GetLogResponse* resp) override {
    absl::MutexLock lock(&mu_);
    data_->get_logs.push_back(*req);
    // At most 4 bytes a call, so the client must page.
    const size_t off = std::min<size_t>(req->offset(), data_->log.size());
    resp->set_data(data_->log.substr(off, 4));
    resp->set_offset(off);
    resp->set_size(data_->log.size());
    resp->set_complete(data_->log_complete);
    return grpc::Status::OK;
  }
  // Like the coordinator: at most kMaxArtifactPage bytes a call, fewer if
  // the request's limit says so.
  grpc::Status GetArtifact(grpc::ServerContext*, const v1::GetArtifactRequest* req,
                           v1::GetArtifactResponse* resp) override {
    absl::MutexLock lock(&mu_);
    data_->get_artifacts.push_back(*req);
    auto it = data_->artifacts.find(req->task_id() + "\n" + req->name());
    if (it == data_->artifacts.end()) {
      return {grpc::StatusCode::NOT_FOUND,
              "task '" + req->task_id() + "' has no artifact '" + req->name() + "'"};
    }
    if (req->offset() == data_->artifact_fail_at) {
      return {grpc::StatusCode::INTERNAL, "disk on fire"};
    }
    const std::string& data = it->second;
    const uint64_t limit =
        req->limit() == 0 ? kMaxArtifactPage : std::min<uint64_t>(req->limit(), kMaxArtifactPage);
    const size_t off = std::min<size_t>(req->offset(), data.size());
    resp->set_data(data.substr(off, limit));
    resp->set_offset(req->offset());
    resp->set_size(data.size() + data_->artifact_size_lie);
    return grpc::Status::OK;
  }
  grpc::Status Cancel(grpc::ServerContext*, const v1::CancelRequest* req,
                      v1::CancelResponse* resp) override {
    absl::MutexLock lock(&mu_);
    data_->cancelled_id = req->id();
    resp->add_cancelled("7/a");
    resp->add_cancelled("7/b");
    return grpc::Status::OK;
  }
  grpc::Status Rerun(grpc::ServerContext*, const v1::RerunRequest* req,
                     v1::RerunResponse* resp) override {
    absl::MutexLock lock(&mu_);
    data_->reruns.push_back(*req);
    if (!data_->submit_error.ok()) return data_->submit_error;
    *resp->mutable_job() = data_->job;
    resp->mutable_job()->set_rerun_of(req->job_id());
    return grpc::Status::OK;
  }
  grpc::Status ListAgents(grpc::ServerContext*, const v1::ListAgentsRequest*,
                          v1::ListAgentsResponse* resp) override {
    v1::Agent* a = resp->add_agents();
    a->set_name("gpu-1");
    a->set_state(v1::AGENT_STATE_CONNECTED);
    a->set_slots(2);
    a->set_used_slots(1);
    a->add_labels("gpu=s4000");
    a->add_running_tasks("7/a");
    a->set_last_seen_us(kT0 - 2'000'000);
    return grpc::Status::OK;
  }
  // An active and a standby on PostgreSQL, and one gone.
  grpc::Status ListCoordinators(grpc::ServerContext*, const v1::ListCoordinatorsRequest*,
                                v1::ListCoordinatorsResponse* resp) override {
    resp->set_store("postgresql");
    resp->set_answered_by("b/2/1");
    v1::CoordinatorInfo* a = resp->add_coordinators();
    a->set_id("a/1/1");
    a->set_address("coord-a:7070");
    a->set_role(v1::COORDINATOR_ROLE_ACTIVE);
    a->set_epoch(3);
    a->mutable_active_since()->set_seconds(kT0 / 1'000'000 - 3600);
    a->mutable_last_seen()->set_seconds(kT0 / 1'000'000 - 1);
    v1::CoordinatorInfo* b = resp->add_coordinators();
    b->set_id("b/2/1");
    b->set_address("coord-b:7070");
    b->set_role(v1::COORDINATOR_ROLE_STANDBY);
    b->mutable_last_seen()->set_seconds(kT0 / 1'000'000 - 2);
    v1::CoordinatorInfo* c = resp->add_coordinators();
    c->set_id("c/3/1");
    c->set_address("coord-c:7070");
    c->set_role(v1::COORDINATOR_ROLE_GONE);
    c->mutable_last_seen()->set_seconds(kT0 / 1'000'000 - 600);
    return grpc::Status::OK;
  }
  grpc::Status Drain(grpc::ServerContext*, const v1::DrainRequest* req,
                     v1::DrainResponse* resp) override {
    if (req->agent() != "gpu-1") return {grpc::StatusCode::NOT_FOUND, "no agent " + req->agent()};
    resp->mutable_agent()->set_name(req->agent());
    resp->mutable_agent()->set_state(req->undrain() ? v1::AGENT_STATE_CONNECTED
                                                    : v1::AGENT_STATE_DRAINING);
    return grpc::Status::OK;
  }

  grpc::Status RevokeAgent(grpc::ServerContext*, const v1::RevokeAgentRequest* req,
                           v1::RevokeAgentResponse* resp) override {
    if (req->agent() != "gpu-1") {
      return {grpc::StatusCode::NOT_FOUND,
              "no agent named '" + req->agent() + "' has connected or enrolled"};
    }
    resp->mutable_agent()->set_name(req->agent());
    resp->mutable_agent()->set_revoked(true);
    resp->add_serials("1f");
    return grpc::Status::OK;
  }

  grpc::Status ListTokens(grpc::ServerContext*, const v1::ListTokensRequest*,
                          v1::ListTokensResponse* resp) override {
    v1::ApiTokenInfo* t = resp->add_tokens();
    t->set_id("tok1");
    t->set_user("ann");
    t->set_role("admin");
    t->mutable_created_time()->set_seconds(kT0 / 1'000'000 - 60);
    return grpc::Status::OK;
  }
  grpc::Status ListAudit(grpc::ServerContext*, const v1::ListAuditRequest*,
                         v1::ListAuditResponse* resp) override {
    v1::AuditRecord* r = resp->add_records();
    r->mutable_time()->set_seconds(kT0 / 1'000'000 - 5);
    r->set_user("ann");
    r->set_role("admin");
    r->set_action("submit");
    r->set_target("7");
    r->set_peer("ipv4:127.0.0.1:5000");
    r->set_outcome("ok");
    return grpc::Status::OK;
  }

  static constexpr uint64_t kMaxArtifactPage = 4 << 20;

 private:
  absl::Mutex mu_;
  FakeUserServiceData* const data_ ABSL_PT_GUARDED_BY(mu_) = this;
};

// A content store that already holds every blob (issue 17): a submit of a
// pipeline with declared inputs (the built-in one uploads its Dockerfiles)
// packs them and sends nothing. The digests it was asked about are kept.
class FakeContentService final : public v1::ContentService::Service {
 public:
  grpc::Status GetLimits(grpc::ServerContext*, const v1::GetContentLimitsRequest*,
                         v1::ContentLimits* resp) override {
    resp->set_max_input_bytes(int64_t{1} << 40);
    absl::MutexLock lock(&mu_);
    ++limits_asked_;
    return grpc::Status::OK;
  }
  grpc::Status FindMissingBlobs(grpc::ServerContext*, const v1::FindMissingBlobsRequest* req,
                                v1::FindMissingBlobsResponse*) override {
    absl::MutexLock lock(&mu_);
    asked_ += req->digests_size();
    return grpc::Status::OK;
  }
  int asked() {
    absl::MutexLock lock(&mu_);
    return asked_;
  }
  int limits_asked() {
    absl::MutexLock lock(&mu_);
    return limits_asked_;
  }

 private:
  absl::Mutex mu_;
  int asked_ ABSL_GUARDED_BY(mu_) = 0;
  int limits_asked_ ABSL_GUARDED_BY(mu_) = 0;
};

// Schedules (issue 14): one schedule, "nightly", with one run of job 7.
class FakeScheduleService final : public v1::ScheduleService::Service {
 public:
  grpc::Status ListSchedules(grpc::ServerContext*, const v1::ListSchedulesRequest*,
                             v1::ListSchedulesResponse* resp) override {
    *resp->add_schedules() = Nightly();
    return grpc::Status::OK;
  }
  grpc::Status GetSchedule(grpc::ServerContext*, const v1::GetScheduleRequest* req,
                           v1::Schedule* resp) override {
    if (req->name() != "nightly")
      return {grpc::StatusCode::NOT_FOUND, "no schedule " + req->name()};
    *resp = Nightly();
    return grpc::Status::OK;
  }

 private:
  static v1::Schedule Nightly() {
    v1::Schedule s;
    s.set_name("nightly");
    s.set_cron("0 2 * * *");
    s.set_overlap(v1::OVERLAP_POLICY_SKIP);
    s.mutable_created_time()->set_seconds(kT0 / 1'000'000 - 86'400);
    v1::ScheduleRun* run = s.add_runs();
    run->mutable_scheduled_time()->set_seconds(kT0 / 1'000'000 - 3'600);
    run->mutable_fire_time()->set_seconds(kT0 / 1'000'000 - 3'600);
    run->set_job_id("7");
    run->set_outcome("submitted");
    run->set_trigger("cron");
    run->set_state(v1::JOB_STATE_SUCCEEDED);
    return s;
  }
};

}  // namespace musafarm::cli::fakes
