#include "coordinator/user_service.h"

#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/api_times.h"
#include "common/grpc_status.h"
#include "common/stream_outbox.h"

namespace musafarm::coordinator {
namespace {

// Runs `fn` on the core loop and finishes the call with its status. Request and
// response stay valid until Finish.
template <typename Fn>
grpc::ServerUnaryReactor* OnLoop(grpc::CallbackServerContext* ctx, EventLoop* loop, Fn fn) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  loop->Post([reactor, fn = std::move(fn)]() mutable { reactor->Finish(ToGrpc(fn())); });
  return reactor;
}

// One WatchJob stream: the core pushes events, the reactor writes them one at
// a time. Finish is sent after the queue drains.
class WatchStream final : public grpc::ServerWriteReactor<v1::WatchEvent>, public Watcher {
 public:
  using Outbox = StreamOutbox<v1::WatchEvent>;

  WatchStream(EventLoop* loop, UserApi* api, UserApi::WatchId id)
      : loop_(loop), api_(api), id_(id) {}

  void Begin(std::shared_ptr<WatchStream> self, v1::WatchJobRequest request) {
    self_ = self;
    loop_->Post([this, self, request = std::move(request)] {
      absl::Status s = api_->AddWatcher(id_, request, self);
      if (!s.ok()) Finish(s);
    });
  }

  void Send(v1::WatchEvent event) override {
    FillApiTimes(&event);
    const v1::WatchEvent* next = nullptr;
    {
      absl::MutexLock lock(&mu_);
      next = outbox_.Push(std::move(event));
    }
    if (next != nullptr) StartWrite(next);
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

  void OnWriteDone(bool ok) override {
    Outbox::AfterWrite next;
    grpc::Status final_status;
    {
      absl::MutexLock lock(&mu_);
      // A failed write: the watcher went away, the rest is dropped.
      if (!ok && !outbox_.closed()) {
        final_ = grpc::Status(grpc::StatusCode::CANCELLED, "watcher gone");
      }
      next = outbox_.OnWriteDone(ok);
      if (next.end) final_status = final_;
    }
    if (next.end) grpc::ServerWriteReactor<v1::WatchEvent>::Finish(final_status);
    if (next.write != nullptr) StartWrite(next.write);
  }

  void OnCancel() override { Finish(absl::CancelledError("watch cancelled")); }

  void OnDone() override {
    std::shared_ptr<WatchStream> self = std::move(self_);
    loop_->Post([this, self] { api_->RemoveWatcher(id_); });
  }

 private:
  EventLoop* const loop_;
  UserApi* const api_;
  const UserApi::WatchId id_;
  std::shared_ptr<WatchStream> self_;
  absl::Mutex mu_;
  Outbox outbox_ ABSL_GUARDED_BY(mu_);
  grpc::Status final_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerUnaryReactor* UserServiceImpl::Submit(grpc::CallbackServerContext* ctx,
                                                  const v1::SubmitRequest* req,
                                                  v1::SubmitResponse* resp) {
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::Job> job = api_->Submit(*req);
    if (!job.ok()) return job.status();
    *resp->mutable_job() = *std::move(job);
    FillApiTimes(resp->mutable_job());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                  const v1::GetJobRequest* req, v1::Job* resp) {
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
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    for (v1::Job& job : api_->ListJobs(req->limit())) {
      FillApiTimes(&job);
      *resp->add_jobs() = std::move(job);
    }
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::WatchEvent>* UserServiceImpl::WatchJob(
    grpc::CallbackServerContext* /*ctx*/, const v1::WatchJobRequest* req) {
  auto stream = std::make_shared<WatchStream>(loop_, api_, next_watch_++);
  stream->Begin(stream, *req);
  return stream.get();
}

grpc::ServerUnaryReactor* UserServiceImpl::GetLog(grpc::CallbackServerContext* ctx,
                                                  const v1::GetLogRequest* req,
                                                  v1::GetLogResponse* resp) {
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
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::CancelResponse> r = api_->Cancel(req->id());
    if (!r.ok()) return r.status();
    *resp = *std::move(r);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::ListAgents(grpc::CallbackServerContext* ctx,
                                                      const v1::ListAgentsRequest* /*req*/,
                                                      v1::ListAgentsResponse* resp) {
  return OnLoop(ctx, loop_, [this, resp]() -> absl::Status {
    resp->set_insecure(insecure_);
    for (v1::Agent& a : api_->ListAgents()) {
      FillApiTimes(&a);
      *resp->add_agents() = std::move(a);
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::Drain(grpc::CallbackServerContext* ctx,
                                                 const v1::DrainRequest* req,
                                                 v1::DrainResponse* resp) {
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::Agent> a = api_->Drain(req->agent(), req->undrain());
    if (!a.ok()) return a.status();
    *resp->mutable_agent() = *std::move(a);
    FillApiTimes(resp->mutable_agent());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::RevokeAgent(grpc::CallbackServerContext* ctx,
                                                       const v1::RevokeAgentRequest* req,
                                                       v1::RevokeAgentResponse* resp) {
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::RevokeAgentResponse> r = api_->RevokeAgent(req->agent());
    if (!r.ok()) return r.status();
    *resp = *std::move(r);
    FillApiTimes(resp->mutable_agent());
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::GetArtifact(grpc::CallbackServerContext* ctx,
                                                       const v1::GetArtifactRequest* req,
                                                       v1::GetArtifactResponse* resp) {
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::GetArtifactResponse> r = api_->GetArtifact(*req);
    if (!r.ok()) return r.status();
    *resp = *std::move(r);
    return absl::OkStatus();
  });
}

}  // namespace musafarm::coordinator
