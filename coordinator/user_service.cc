#include "coordinator/user_service.h"

#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/grpc_status.h"

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
  WatchStream(EventLoop* loop, Core* core, Core::WatchId id) : loop_(loop), core_(core), id_(id) {}

  void Begin(std::shared_ptr<WatchStream> self, v1::WatchJobRequest request) {
    self_ = self;
    loop_->Post([this, self, request = std::move(request)] {
      absl::Status s = core_->AddWatcher(id_, request, self);
      if (!s.ok()) Finish(s);
    });
  }

  void Send(v1::WatchEvent event) override {
    const v1::WatchEvent* next = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (finish_requested_) return;
      outbox_.push_back(std::move(event));
      if (writing_) return;
      writing_ = true;
      next = &outbox_.front();
    }
    StartWrite(next);
  }

  void Finish(const absl::Status& status) override {
    bool now = false;
    {
      absl::MutexLock lock(&mu_);
      if (finish_requested_) return;
      finish_requested_ = true;
      final_ = ToGrpc(status);
      now = !writing_;
    }
    if (now) grpc::ServerWriteReactor<v1::WatchEvent>::Finish(final_);
  }

  void OnWriteDone(bool ok) override {
    const v1::WatchEvent* next = nullptr;
    bool finish_now = false;
    {
      absl::MutexLock lock(&mu_);
      outbox_.pop_front();
      if (!ok) {
        // The watcher went away: drop the rest.
        outbox_.clear();
        if (!finish_requested_) {
          finish_requested_ = true;
          final_ = grpc::Status(grpc::StatusCode::CANCELLED, "watcher gone");
        }
      }
      if (outbox_.empty()) {
        writing_ = false;
        finish_now = finish_requested_;
      } else {
        next = &outbox_.front();
      }
    }
    if (finish_now) grpc::ServerWriteReactor<v1::WatchEvent>::Finish(final_);
    if (next != nullptr) StartWrite(next);
  }

  void OnCancel() override { Finish(absl::CancelledError("watch cancelled")); }

  void OnDone() override {
    std::shared_ptr<WatchStream> self = std::move(self_);
    loop_->Post([this, self] { core_->RemoveWatcher(id_); });
  }

 private:
  EventLoop* const loop_;
  Core* const core_;
  const Core::WatchId id_;
  std::shared_ptr<WatchStream> self_;
  absl::Mutex mu_;
  std::deque<v1::WatchEvent> outbox_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_requested_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_;
};

}  // namespace

grpc::ServerUnaryReactor* UserServiceImpl::Submit(grpc::CallbackServerContext* ctx,
                                                  const v1::SubmitRequest* req,
                                                  v1::SubmitResponse* resp) {
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::Job> job = core_->Submit(*req);
    if (!job.ok()) return job.status();
    *resp->mutable_job() = *std::move(job);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::GetJob(grpc::CallbackServerContext* ctx,
                                                  const v1::GetJobRequest* req, v1::Job* resp) {
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::Job> job = core_->GetJob(req->job_id());
    if (!job.ok()) return job.status();
    *resp = *std::move(job);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::ListJobs(grpc::CallbackServerContext* ctx,
                                                    const v1::ListJobsRequest* req,
                                                    v1::ListJobsResponse* resp) {
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    for (v1::Job& job : core_->ListJobs(req->limit())) *resp->add_jobs() = std::move(job);
    return absl::OkStatus();
  });
}

grpc::ServerWriteReactor<v1::WatchEvent>* UserServiceImpl::WatchJob(
    grpc::CallbackServerContext* /*ctx*/, const v1::WatchJobRequest* req) {
  auto stream = std::make_shared<WatchStream>(loop_, core_, next_watch_++);
  stream->Begin(stream, *req);
  return stream.get();
}

grpc::ServerUnaryReactor* UserServiceImpl::GetLog(grpc::CallbackServerContext* ctx,
                                                  const v1::GetLogRequest* req,
                                                  v1::GetLogResponse* resp) {
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::GetLogResponse> log = core_->GetLog(*req);
    if (!log.ok()) return log.status();
    *resp = *std::move(log);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::Cancel(grpc::CallbackServerContext* ctx,
                                                  const v1::CancelRequest* req,
                                                  v1::CancelResponse* resp) {
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::CancelResponse> r = core_->Cancel(req->id());
    if (!r.ok()) return r.status();
    *resp = *std::move(r);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::ListAgents(grpc::CallbackServerContext* ctx,
                                                      const v1::ListAgentsRequest* /*req*/,
                                                      v1::ListAgentsResponse* resp) {
  return OnLoop(ctx, loop_, [this, resp]() -> absl::Status {
    for (v1::Agent& a : core_->ListAgents()) *resp->add_agents() = std::move(a);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::Drain(grpc::CallbackServerContext* ctx,
                                                 const v1::DrainRequest* req,
                                                 v1::DrainResponse* resp) {
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::Agent> a = core_->Drain(req->agent(), req->undrain());
    if (!a.ok()) return a.status();
    *resp->mutable_agent() = *std::move(a);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* UserServiceImpl::GetArtifact(grpc::CallbackServerContext* ctx,
                                                       const v1::GetArtifactRequest* req,
                                                       v1::GetArtifactResponse* resp) {
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::GetArtifactResponse> r = core_->GetArtifact(*req);
    if (!r.ok()) return r.status();
    *resp = *std::move(r);
    return absl::OkStatus();
  });
}

}  // namespace musafarm::coordinator
