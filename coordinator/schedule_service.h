#pragma once

#include "common/event_loop.h"
#include "coordinator/access_control.h"
#include "coordinator/schedule_api.h"
#include "coordinator/user_admin.h"
#include "musafarm/v1/schedule_service.grpc.pb.h"

namespace musafarm::coordinator {

// gRPC adapter for the schedules (issue 14). Every call is answered by `api`
// on the core loop. Callers are admitted as by UserServiceImpl: a token that
// may read lists and shows; adding, removing, pausing, resuming and running
// need kManageSchedules (admins), and each of those, allowed or refused, is
// written to the audit log ("schedule.add", ... with the schedule's name).
class ScheduleServiceImpl final : public v1::ScheduleService::CallbackService {
 public:
  // None owned; all outlive the service. `admin` may be null (nothing audited).
  ScheduleServiceImpl(EventLoop* loop, ScheduleApi* api, const AccessControl* access,
                      UserAdmin* admin)
      : loop_(loop), api_(api), access_(access), admin_(admin) {}

  grpc::ServerUnaryReactor* AddSchedule(grpc::CallbackServerContext* ctx,
                                        const v1::AddScheduleRequest* req,
                                        v1::Schedule* resp) override;
  grpc::ServerUnaryReactor* ListSchedules(grpc::CallbackServerContext* ctx,
                                          const v1::ListSchedulesRequest* req,
                                          v1::ListSchedulesResponse* resp) override;
  grpc::ServerUnaryReactor* GetSchedule(grpc::CallbackServerContext* ctx,
                                        const v1::GetScheduleRequest* req,
                                        v1::Schedule* resp) override;
  grpc::ServerUnaryReactor* RemoveSchedule(grpc::CallbackServerContext* ctx,
                                           const v1::ScheduleNameRequest* req,
                                           v1::Schedule* resp) override;
  grpc::ServerUnaryReactor* PauseSchedule(grpc::CallbackServerContext* ctx,
                                          const v1::ScheduleNameRequest* req,
                                          v1::Schedule* resp) override;
  grpc::ServerUnaryReactor* ResumeSchedule(grpc::CallbackServerContext* ctx,
                                           const v1::ScheduleNameRequest* req,
                                           v1::Schedule* resp) override;
  grpc::ServerUnaryReactor* RunSchedule(grpc::CallbackServerContext* ctx,
                                        const v1::ScheduleNameRequest* req,
                                        v1::ScheduleRun* resp) override;

 private:
  // Admits an admin for `action` on schedule `name`, then runs `fn` on the
  // loop and audits its outcome.
  template <typename Fn>
  grpc::ServerUnaryReactor* Change(grpc::CallbackServerContext* ctx, const char* action,
                                   const std::string& name, Fn fn);

  EventLoop* const loop_;
  ScheduleApi* const api_;  // used only on loop_
  const AccessControl* const access_;
  UserAdmin* const admin_;
};

}  // namespace musafarm::coordinator
