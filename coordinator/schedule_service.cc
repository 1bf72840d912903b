#include "coordinator/schedule_service.h"

#include <utility>

#include "coordinator/grpc_call.h"
#include "coordinator/user_actions.h"

namespace musafarm::coordinator {

template <typename Fn>
grpc::ServerUnaryReactor* ScheduleServiceImpl::Change(grpc::CallbackServerContext* ctx,
                                                      const char* action, const std::string& name,
                                                      Fn fn) {
  absl::StatusOr<Principal> who =
      AdmitCall(ctx, *access_, admin_, Action::kManageSchedules, action, name);
  if (!who.ok()) return FinishNow(ctx, who.status());
  return OnLoop(ctx, loop_,
                [this, fn = std::move(fn), who = *who, peer = ctx->peer(), action,
                 name]() mutable -> absl::Status {
                  absl::Status s = fn(who);
                  RecordAudit(admin_, who, peer, action, name, s);
                  return s;
                });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::AddSchedule(grpc::CallbackServerContext* ctx,
                                                           const v1::AddScheduleRequest* req,
                                                           v1::Schedule* resp) {
  return Change(ctx, "schedule.add", req->name(), [this, req, resp](const Principal& who) {
    absl::StatusOr<v1::Schedule> added = api_->AddSchedule(*req, who.user);
    if (!added.ok()) return added.status();
    *resp = *std::move(added);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::ListSchedules(grpc::CallbackServerContext* ctx,
                                                             const v1::ListSchedulesRequest*,
                                                             v1::ListSchedulesResponse* resp) {
  absl::StatusOr<Principal> who = AdmitCall(ctx, *access_, admin_, Action::kRead, "", "");
  if (!who.ok()) return FinishNow(ctx, who.status());
  return OnLoop(ctx, loop_, [this, resp]() -> absl::Status {
    absl::StatusOr<std::vector<v1::Schedule>> all = api_->ListSchedules();
    if (!all.ok()) return all.status();
    for (v1::Schedule& s : *all) *resp->add_schedules() = std::move(s);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::GetSchedule(grpc::CallbackServerContext* ctx,
                                                           const v1::GetScheduleRequest* req,
                                                           v1::Schedule* resp) {
  absl::StatusOr<Principal> who = AdmitCall(ctx, *access_, admin_, Action::kRead, "", "");
  if (!who.ok()) return FinishNow(ctx, who.status());
  return OnLoop(ctx, loop_, [this, req, resp]() -> absl::Status {
    absl::StatusOr<v1::Schedule> schedule = api_->GetSchedule(req->name(), req->runs());
    if (!schedule.ok()) return schedule.status();
    *resp = *std::move(schedule);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::RemoveSchedule(grpc::CallbackServerContext* ctx,
                                                              const v1::ScheduleNameRequest* req,
                                                              v1::Schedule* resp) {
  return Change(ctx, "schedule.remove", req->name(), [this, req, resp](const Principal&) {
    absl::StatusOr<v1::Schedule> removed = api_->RemoveSchedule(req->name());
    if (!removed.ok()) return removed.status();
    *resp = *std::move(removed);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::PauseSchedule(grpc::CallbackServerContext* ctx,
                                                             const v1::ScheduleNameRequest* req,
                                                             v1::Schedule* resp) {
  return Change(ctx, "schedule.pause", req->name(), [this, req, resp](const Principal&) {
    absl::StatusOr<v1::Schedule> paused = api_->PauseSchedule(req->name(), /*pause=*/true);
    if (!paused.ok()) return paused.status();
    *resp = *std::move(paused);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::ResumeSchedule(grpc::CallbackServerContext* ctx,
                                                              const v1::ScheduleNameRequest* req,
                                                              v1::Schedule* resp) {
  return Change(ctx, "schedule.resume", req->name(), [this, req, resp](const Principal&) {
    absl::StatusOr<v1::Schedule> resumed = api_->PauseSchedule(req->name(), /*pause=*/false);
    if (!resumed.ok()) return resumed.status();
    *resp = *std::move(resumed);
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::RunSchedule(grpc::CallbackServerContext* ctx,
                                                           const v1::ScheduleNameRequest* req,
                                                           v1::ScheduleRun* resp) {
  absl::StatusOr<Principal> who =
      AdmitCall(ctx, *access_, admin_, Action::kManageSchedules, "schedule.run", req->name());
  if (!who.ok()) return FinishNow(ctx, who.status());
  // Answered when the run is submitted, which for a schedule with git inputs
  // is after they are resolved (off the loop).
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  loop_->Post([this, reactor, req, resp, who = *who, peer = ctx->peer()] {
    api_->RunSchedule(req->name(), [this, reactor, req, resp, who,
                                    peer](absl::StatusOr<v1::ScheduleRun> run) {
      absl::Status s = run.status();
      if (run.ok()) *resp = *std::move(run);
      RecordAudit(admin_, who, peer, "schedule.run", req->name(), s);
      reactor->Finish(ToGrpc(s));
    });
  });
  return reactor;
}

}  // namespace musafarm::coordinator
