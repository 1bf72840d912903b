#include "coordinator/user_service.h"

#include <memory>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/logging.h"
#include "absl/synchronization/mutex.h"
#include "common/api_times.h"
#include "common/grpc_status.h"
#include "common/stream_outbox.h"
#include "coordinator/grpc_call.h"
#include "coordinator/log_backlog.h"
#include "coordinator/user_actions.h"

namespace musafarm::coordinator {
namespace {

constexpr int kDefaultAuditLimit = 100;

void SetTime(absl::Time t, google::protobuf::Timestamp* ts) {
  const int64_t us = absl::ToUnixMicros(t);
  ts->set_seconds(us / 1000000);
  ts->set_nanos(static_cast<int32_t>(us % 1000000) * 1000);
}

void ToInfo(const ApiToken& t, v1::ApiTokenInfo* out) {
  out->set_id(t.id);
  out->set_user(t.user);
  out->set_role(t.role);
  SetTime(t.created_at, out->mutable_created_time());
  out->set_created_by(t.created_by);
  if (t.expire_time != absl::InfiniteFuture()) SetTime(t.expire_time, out->mutable_expire_time());
  if (t.revoked()) SetTime(t.revoked_at, out->mutable_revoked_time());
}

absl::Status NoAdmin() {
  return absl::FailedPreconditionError("this coordinator keeps no users (no user store)");
}

// One WatchJob stream: the core pushes events, the reactor writes them one at
// a time. Finish is sent after the queue drains. It counts the log bytes queued
// and not yet written, for the hub's flow control (WatchHub).
class WatchStream final : public grpc::ServerWriteReactor<v1::WatchEvent>, public Watcher {
 public:
  using Outbox = StreamOutbox<v1::WatchEvent>;

  WatchStream(EventLoop* loop, UserApi* api, UserApi::WatchId id)
      : loop_(loop), api_(api), id_(id) {}

  // Ends the stream with `why` before anything was registered.
  void Refuse(std::shared_ptr<WatchStream> self, const absl::Status& why) {
    self_ = std::move(self);
    Finish(why);
  }

  void Begin(std::shared_ptr<WatchStream> self, v1::WatchJobRequest request) {
    self_ = self;
    loop_->Post([this, self, request = std::move(request)] {
      absl::Status s = api_->AddWatcher(id_, request, self);
      if (!s.ok()) Finish(s);
    });
  }

  void Send(v1::WatchEvent event) override {
    FillApiTimes(&event);
    const uint64_t log_bytes = LogBytes(event);
    const v1::WatchEvent* next = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (outbox_.closed()) return;
      backlog_.Queued(log_bytes);
      next = outbox_.Push(std::move(event));
      if (next != nullptr) in_flight_ = log_bytes;
    }
    if (next != nullptr) StartWrite(next);
  }

  void SendLast(v1::WatchEvent event, const absl::Status& status) override {
    FillApiTimes(&event);
    const grpc::Status final_status = ToGrpc(status);
    const uint64_t log_bytes = LogBytes(event);
    const v1::WatchEvent* now = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (outbox_.closed()) return;
      backlog_.Queued(log_bytes);
      final_ = final_status;
      now = outbox_.PushLast(std::move(event));
      if (now != nullptr) in_flight_ = log_bytes;
    }
    // Nothing in flight: the event and the trailers go in one write now;
    // otherwise OnWriteDone sends them so once the write before is done.
    if (now != nullptr) {
      grpc::ServerWriteReactor<v1::WatchEvent>::StartWriteAndFinish(now, grpc::WriteOptions(),
                                                                     final_status);
    }
  }

  void Finish(const absl::Status& status) override {
    const grpc::Status final_status = ToGrpc(status);
    bool now = false;
    {
      absl::MutexLock lock(&mu_);
      if (outbox_.closed()) return;
      final_ = final_status;
      now = outbox_.Close(Outbox::CloseMode::kDrain);
    }
    if (now) grpc::ServerWriteReactor<v1::WatchEvent>::Finish(final_status);
  }

  uint64_t UnwrittenLogBytes() const override {
    absl::MutexLock lock(&mu_);
    return backlog_.unwritten();
  }

  void RequestDrainNotice(uint64_t at_most) override {
    bool due = false;
    {
      absl::MutexLock lock(&mu_);
      due = backlog_.Ask(at_most);
    }
    if (due) PostDrained();
  }

  void OnWriteDone(bool ok) override {
    Outbox::AfterWrite next;
    grpc::Status final_status;
    bool drained = false;
    {
      absl::MutexLock lock(&mu_);
      // A failed write: the watcher went away, the rest is dropped.
      if (!ok && !outbox_.closed()) {
        final_ = grpc::Status(grpc::StatusCode::CANCELLED, "watcher gone");
      }
      next = outbox_.OnWriteDone(ok);
      if (next.end || next.last) final_status = final_;
      // Nothing queued: what was is written or dropped (a failed write).
      drained = backlog_.Written(outbox_.queued() == 0 ? backlog_.unwritten() : in_flight_);
      in_flight_ = next.write != nullptr ? LogBytes(*next.write) : 0;
    }
    if (drained) PostDrained();
    if (next.end) grpc::ServerWriteReactor<v1::WatchEvent>::Finish(final_status);
    if (next.write != nullptr && next.last) {
      // The job's end and the trailers in one write, not two: the watcher
      // (`submit --watch`) is waiting for exactly these (issue 19). No
      // OnWriteDone follows; the message stays queued until the reactor goes.
      grpc::ServerWriteReactor<v1::WatchEvent>::StartWriteAndFinish(next.write,
                                                                     grpc::WriteOptions(), final_status);
    } else if (next.write != nullptr) {
      StartWrite(next.write);
    }
  }

  void OnCancel() override { Finish(absl::CancelledError("watch cancelled")); }

  void OnDone() override {
    std::shared_ptr<WatchStream> self = std::move(self_);
    loop_->Post([this, self] { api_->RemoveWatcher(id_); });
  }

 private:
  static uint64_t LogBytes(const v1::WatchEvent& e) {
    return e.has_log() ? e.log().data().size() : 0;
  }
  // RemoveWatcher, the last call naming the id, is posted later than this.
  void PostDrained() {
    loop_->Post([api = api_, id = id_] { api->WatcherDrained(id); });
  }

  EventLoop* const loop_;
  UserApi* const api_;
  const UserApi::WatchId id_;
  std::shared_ptr<WatchStream> self_;
  mutable absl::Mutex mu_;
  Outbox outbox_ ABSL_GUARDED_BY(mu_);
  grpc::Status final_ ABSL_GUARDED_BY(mu_);
  LogBacklog backlog_ ABSL_GUARDED_BY(mu_);       // the write in flight's bytes included
  uint64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;  // log bytes of the write in flight
};

}  // namespace

absl::StatusOr<Principal> UserServiceImpl::Admit(grpc::CallbackServerContext* ctx, Action what,
                                                 const std::string& audit_action,
                                                 const std::string& audit_target) {
  return AdmitCall(ctx, *access_, admin_, what, audit_action, audit_target);
}

void UserServiceImpl::Audit(const Principal& who, const std::string& peer,
                            const std::string& action, const std::string& target,
                            const absl::Status& outcome) {
  RecordAudit(admin_, who, peer, action, target, outcome);
}

grpc::ServerUnaryReactor* UserServiceImpl::Submit(grpc::CallbackServerContext* ctx,
                                                  const v1::SubmitRequest* req,
                                                  v1::SubmitResponse* resp) {
  absl::StatusOr<Principal> who = Admit(ctx, Action::kSubmit, "submit", req->spec_file());
  if (!who.ok()) return FinishNow(ctx, who.status());
  bool unresolved = false;
  for (const v1::JobInput& in : req->inputs()) {
    unresolved = unresolved || (in.tree().sha256().empty() && !in.source().empty());
  }
  if (!unresolved || resolve_ == nullptr) {
    // Grouped (EventLoop::PostGrouped), unlike the other calls: the job and
    // the placement of its first tasks are committed together at the end of
    // the group (one fsync, shared with the submissions and agent messages
    // that queued up meanwhile), and the answer goes out after that commit
    // (issue 19).
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    loop_->PostGrouped([this, reactor, req, resp, who = *who, peer = ctx->peer()] {
      AnswerWhenDurable(reactor, SubmitOnLoop(*req, who, peer, resp));
    });
    return reactor;
  }
  // Git inputs: resolved on the content loop, then submitted on the core loop.
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto resolved = std::make_shared<v1::SubmitRequest>(*req);
  resolve_io_->Post([this, reactor, resolved, resp, who = *who, peer = ctx->peer()] {
    if (absl::Status s = resolve_(resolved.get()); !s.ok()) {
      Audit(who, peer, "submit", resolved->spec_file(), s);
      reactor->Finish(ToGrpc(s));
      return;
    }
    loop_->PostGrouped([this, reactor, resolved, resp, who, peer] {
      AnswerWhenDurable(reactor, SubmitOnLoop(*resolved, who, peer, resp));
    });
  });
  return reactor;
}

void UserServiceImpl::AnswerWhenDurable(grpc::ServerUnaryReactor* reactor, absl::Status status) {
  // A refused submission stored nothing (its audit line aside, written at
  // once): answered now.
  if (!status.ok()) {
    reactor->Finish(ToGrpc(status));
    return;
  }
  api_->WhenDurable([reactor] { reactor->Finish(grpc::Status::OK); });
}

absl::Status UserServiceImpl::SubmitOnLoop(const v1::SubmitRequest& req, const Principal& who,
                                           const std::string& peer, v1::SubmitResponse* resp) {
  // A job's audit line is committed with the job (one fsync before the
  // answer, not two); a refused one's is written here.
  absl::StatusOr<v1::Job> job =
      api_->Submit(req, who.user, SucceededAuditLine(admin_, who, peer, "submit"));
  if (!job.ok()) {
    Audit(who, peer, "submit", req.spec_file(), job.status());
    return job.status();
  }
  for (std::string& w : api_->SubmitWarnings(*job)) resp->add_warnings(std::move(w));
  *resp->mutable_job() = *std::move(job);
  FillApiTimes(resp->mutable_job());
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* UserServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                  const v1::GetJobRequest* req, v1::Job* resp) {
  absl::StatusOr<Principal> who = Admit(ctx, Action::kRead, "", "");
  if (!who.ok()) return FinishNow(ctx, who.status());
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::Job> job = api_->GetJob(req->job_id());
    if (!job.ok()) return job.status();
    *resp = *std::move(job);
    FillApiTimes(resp);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                    const v1::ListJobsRequest* req,
                                                    v1::ListJobsResponse* resp) {
  absl::StatusOr<Principal> who = Admit(ctx, Action::kRead, "", "");
  if (!who.ok()) return FinishNow(ctx, who.status());
  if (req->mine() && !req->user().empty() && req->user() != who->user) {
    return FinishNow(ctx, absl::InvalidArgumentError(absl::StrCat(
                           "mine (", who->user, ") and user (", req->user(), ") disagree")));
  }
  JobFilter filter;
  filter.limit = req->limit();
  filter.submitter = req->mine() ? who->user : req->user();
  for (int state : req->states()) {
    if (state == v1::JOB_STATE_UNSPECIFIED || !v1::JobState_IsValid(state)) {
      return FinishNow(ctx, absl::InvalidArgumentError(
                                absl::StrCat("states: ", state, " is no job state")));
    }
    filter.states.push_back(static_cast<v1::JobState>(state));
  }
  filter.name_contains = req->name_contains();
  if (req->created_after_us() != 0) {
    filter.created_after = absl::FromUnixMicros(req->created_after_us());
  }
  if (req->created_before_us() != 0) {
    filter.created_before = absl::FromUnixMicros(req->created_before_us());
  }
  return OnLoop(ctx, loop_, [this, resp, filter = std::move(filter)]() -> absl::Status {
    for (v1::Job& job : api_->ListJobs(filter)) {
      FillApiTimes(&job);
      *resp->add_jobs() = std::move(job);
    }
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::WatchEvent>* UserServiceImpl::WatchJob(
    grpc::CallbackServerContext* ctx, const v1::WatchJobRequest* req) {
  auto stream = std::make_shared<WatchStream>(loop_, api_, next_watch_++);
  absl::StatusOr<Principal> who = Admit(ctx, Action::kRead, "", "");
  if (!who.ok()) {
    stream->Refuse(stream, who.status());
  } else {
    stream->Begin(stream, *req);
  }
  return stream.get();
}

grpc::ServerUnaryReactor* UserServiceImpl::GetLog(grpc::CallbackServerContext* ctx,
                                                  const v1::GetLogRequest* req,
                                                  v1::GetLogResponse* resp) {
  absl::StatusOr<Principal> who = Admit(ctx, Action::kRead, "", "");
  if (!who.ok()) return FinishNow(ctx, who.status());
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::GetLogResponse> log = api_->GetLog(*req);
    if (!log.ok()) return log.status();
    *resp = *std::move(log);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::Cancel(grpc::CallbackServerContext* ctx,
                                                  const v1::CancelRequest* req,
                                                  v1::CancelResponse* resp) {
  // Authenticated here; authorized on the loop, where the job's owner is known.
  absl::StatusOr<Principal> who = Admit(ctx, Action::kRead, "", "");
  if (!who.ok()) return FinishNow(ctx, who.status());
  return OnLoop(ctx, loop_, [this, req, resp, who = *who, peer = ctx->peer()]() -> absl::Status {
    absl::StatusOr<v1::CancelResponse> r = CancelJobAs(*api_, *access_, admin_, who, peer, req->id());
    if (!r.ok()) return r.status();
    *resp = *std::move(r);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::Rerun(grpc::CallbackServerContext* ctx,
                                                 const v1::RerunRequest* req,
                                                 v1::RerunResponse* resp) {
  // Authenticated here; authorized on the loop, where the job's owner is known.
  absl::StatusOr<Principal> who = Admit(ctx, Action::kRead, "", "");
  if (!who.ok()) return FinishNow(ctx, who.status());
  return OnLoop(ctx, loop_, [this, req, resp, who = *who, peer = ctx->peer()]() -> absl::Status {
    absl::StatusOr<v1::Job> job = RerunJobAs(*api_, *access_, admin_, who, peer, *req);
    if (!job.ok()) return job.status();
    for (std::string& w : api_->SubmitWarnings(*job)) resp->add_warnings(std::move(w));
    *resp->mutable_job() = *std::move(job);
    FillApiTimes(resp->mutable_job());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::ListAgents(grpc::CallbackServerContext* ctx,
                                                      const v1::ListAgentsRequest* /*req*/,
                                                      v1::ListAgentsResponse* resp) {
  absl::StatusOr<Principal> who = Admit(ctx, Action::kRead, "", "");
  if (!who.ok()) return FinishNow(ctx, who.status());
  return OnLoop(ctx, loop_, [this, resp]() -> absl::Status {
    resp->set_insecure(access_->insecure());
    for (v1::Agent& a : api_->ListAgents()) {
      FillApiTimes(&a);
      *resp->add_agents() = std::move(a);
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::ListCoordinators(
    grpc::CallbackServerContext* ctx, const v1::ListCoordinatorsRequest* /*req*/,
    v1::ListCoordinatorsResponse* resp) {
  absl::StatusOr<Principal> who = Admit(ctx, Action::kRead, "", "");
  if (!who.ok()) return FinishNow(ctx, who.status());
  if (!list_) {
    return FinishNow(ctx, absl::UnimplementedError("this server does not list coordinators"));
  }
  return OnLoop(ctx, list_io_, [this, resp]() -> absl::Status {
    absl::StatusOr<v1::ListCoordinatorsResponse> r = list_();
    if (!r.ok()) return r.status();
    *resp = *std::move(r);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::Drain(grpc::CallbackServerContext* ctx,
                                                 const v1::DrainRequest* req,
                                                 v1::DrainResponse* resp) {
  const std::string action = req->undrain() ? "undrain" : "drain";
  absl::StatusOr<Principal> who = Admit(ctx, Action::kDrainAgent, action, req->agent());
  if (!who.ok()) return FinishNow(ctx, who.status());
  return OnLoop(ctx, loop_,
                [this, req, resp, action, who = *who, peer = ctx->peer()]() -> absl::Status {
                  absl::StatusOr<v1::Agent> a = api_->Drain(req->agent(), req->undrain());
                  Audit(who, peer, action, req->agent(), a.status());
                  if (!a.ok()) return a.status();
                  *resp->mutable_agent() = *std::move(a);
                  FillApiTimes(resp->mutable_agent());
                  return absl::OkStatus();
                });
}

grpc::ServerUnaryReactor* UserServiceImpl::RevokeAgent(grpc::CallbackServerContext* ctx,
                                                       const v1::RevokeAgentRequest* req,
                                                       v1::RevokeAgentResponse* resp) {
  absl::StatusOr<Principal> who = Admit(ctx, Action::kRevokeAgent, "agent.revoke", req->agent());
  if (!who.ok()) return FinishNow(ctx, who.status());
  return OnLoop(ctx, loop_, [this, req, resp, who = *who, peer = ctx->peer()]() -> absl::Status {
    absl::StatusOr<v1::RevokeAgentResponse> r = api_->RevokeAgent(req->agent());
    Audit(who, peer, "agent.revoke", req->agent(), r.status());
    if (!r.ok()) return r.status();
    *resp = *std::move(r);
    FillApiTimes(resp->mutable_agent());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::GetArtifact(grpc::CallbackServerContext* ctx,
                                                       const v1::GetArtifactRequest* req,
                                                       v1::GetArtifactResponse* resp) {
  absl::StatusOr<Principal> who = Admit(ctx, Action::kRead, "", "");
  if (!who.ok()) return FinishNow(ctx, who.status());
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::GetArtifactResponse> r = api_->GetArtifact(*req);
    if (!r.ok()) return r.status();
    *resp = *std::move(r);
    return absl::OkStatus();
  });
}

// Token and audit calls run on the loop too: no handler blocks a gRPC thread
// on a store write.
grpc::ServerUnaryReactor* UserServiceImpl::CreateToken(grpc::CallbackServerContext* ctx,
                                                       const v1::CreateTokenRequest* req,
                                                       v1::CreateTokenResponse* resp) {
  absl::StatusOr<Principal> who = Admit(ctx, Action::kManageTokens, "token.create", req->user());
  if (!who.ok()) return FinishNow(ctx, who.status());
  if (admin_ == nullptr) return FinishNow(ctx, NoAdmin());
  if (req->ttl_seconds() < 0) {
    return FinishNow(ctx, absl::InvalidArgumentError("ttl_seconds must not be negative"));
  }
  const absl::Duration ttl =
      req->ttl_seconds() == 0 ? absl::InfiniteDuration() : absl::Seconds(req->ttl_seconds());
  return OnLoop(ctx, loop_,
                [this, req, resp, ttl, who = *who, peer = ctx->peer()]() -> absl::Status {
                  const Actor by{who.user, std::string(RoleName(who.role)), peer};
                  absl::StatusOr<NewApiToken> t =
                      admin_->CreateToken(by, req->user(), req->role(), ttl, absl::Now());
                  if (!t.ok()) return t.status();
                  ToInfo(t->row, resp->mutable_token());
                  resp->set_secret_token(t->text);
                  return absl::OkStatus();
                });
}

grpc::ServerUnaryReactor* UserServiceImpl::ListTokens(grpc::CallbackServerContext* ctx,
                                                      const v1::ListTokensRequest* /*req*/,
                                                      v1::ListTokensResponse* resp) {
  absl::StatusOr<Principal> who = Admit(ctx, Action::kManageTokens, "", "");
  if (!who.ok()) return FinishNow(ctx, who.status());
  if (admin_ == nullptr) return FinishNow(ctx, NoAdmin());
  return OnLoop(ctx, loop_, [this, resp]() -> absl::Status {
    absl::StatusOr<std::vector<ApiToken>> tokens = admin_->ListTokens();
    if (!tokens.ok()) return tokens.status();
    for (const ApiToken& t : *tokens) ToInfo(t, resp->add_tokens());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::RevokeToken(grpc::CallbackServerContext* ctx,
                                                       const v1::RevokeTokenRequest* req,
                                                       v1::RevokeTokenResponse* resp) {
  absl::StatusOr<Principal> who =
      Admit(ctx, Action::kManageTokens, "token.revoke", req->id_or_user());
  if (!who.ok()) return FinishNow(ctx, who.status());
  if (admin_ == nullptr) return FinishNow(ctx, NoAdmin());
  return OnLoop(ctx, loop_, [this, req, resp, who = *who, peer = ctx->peer()]() -> absl::Status {
    const Actor by{who.user, std::string(RoleName(who.role)), peer};
    absl::StatusOr<std::vector<ApiToken>> revoked =
        admin_->RevokeTokens(by, req->id_or_user(), absl::Now());
    if (!revoked.ok()) return revoked.status();
    for (const ApiToken& t : *revoked) ToInfo(t, resp->add_revoked());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::ListAudit(grpc::CallbackServerContext* ctx,
                                                     const v1::ListAuditRequest* req,
                                                     v1::ListAuditResponse* resp) {
  absl::StatusOr<Principal> who = Admit(ctx, Action::kReadAudit, "", "");
  if (!who.ok()) return FinishNow(ctx, who.status());
  if (admin_ == nullptr) return FinishNow(ctx, NoAdmin());
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    AuditFilter filter;
    filter.user = req->user();
    if (req->has_since()) {
      filter.since = absl::FromUnixSeconds(req->since().seconds()) +
                     absl::Nanoseconds(req->since().nanos());
    }
    filter.limit = req->limit() > 0 ? req->limit() : kDefaultAuditLimit;
    absl::StatusOr<std::vector<AuditEntry>> lines = admin_->ListAudit(filter);
    if (!lines.ok()) return lines.status();
    for (const AuditEntry& e : *lines) {
      v1::AuditRecord* r = resp->add_records();
      SetTime(e.time, r->mutable_time());
      r->set_user(e.user);
      r->set_role(e.role);
      r->set_action(e.action);
      r->set_target(e.target);
      r->set_peer(e.peer);
      r->set_outcome(e.outcome);
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::WhoAmI(grpc::CallbackServerContext* ctx,
                                                  const v1::WhoAmIRequest* /*req*/,
                                                  v1::WhoAmIResponse* resp) {
  absl::StatusOr<Principal> who = Admit(ctx, Action::kRead, "", "");
  if (!who.ok()) return FinishNow(ctx, who.status());
  resp->set_user(who->user);
  resp->set_role(std::string(RoleName(who->role)));
  resp->set_token_id(who->token_id);
  resp->set_insecure(who->insecure);
  return FinishNow(ctx, absl::OkStatus());
}

}  // namespace musafarm::coordinator
