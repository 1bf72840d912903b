#include "common/api_times.h"

#include <google/protobuf/util/time_util.h>

#include <cstdint>

namespace musafarm {
namespace {

using google::protobuf::util::TimeUtil;

// Sets a Timestamp field of `m` from microseconds, or clears it for 0 (not
// happened), so that JSON leaves it out rather than showing 1970.
template <typename M>
void SetTime(int64_t us, M* m, google::protobuf::Timestamp* (M::*mutable_field)(),
             void (M::*clear_field)()) {
  if (us == 0) {
    (m->*clear_field)();
  } else {
    *(m->*mutable_field)() = TimeUtil::MicrosecondsToTimestamp(us);
  }
}

}  // namespace

void FillApiTimes(v1::Task* task) {
  SetTime(task->created_us(), task, &v1::Task::mutable_created_time, &v1::Task::clear_created_time);
  SetTime(task->started_us(), task, &v1::Task::mutable_started_time, &v1::Task::clear_started_time);
  SetTime(task->ended_us(), task, &v1::Task::mutable_ended_time, &v1::Task::clear_ended_time);
  SetTime(task->cancel_requested_us(), task, &v1::Task::mutable_cancel_requested_time,
          &v1::Task::clear_cancel_requested_time);
  v1::StageSpec* run = task->mutable_spec()->mutable_run();
  if (run->timeout_seconds() > 0) {
    *run->mutable_timeout() = TimeUtil::SecondsToDuration(run->timeout_seconds());
  } else {
    run->clear_timeout();
  }
}

void FillApiTimes(v1::Job* job) {
  SetTime(job->created_us(), job, &v1::Job::mutable_created_time, &v1::Job::clear_created_time);
  SetTime(job->ended_us(), job, &v1::Job::mutable_ended_time, &v1::Job::clear_ended_time);
  for (v1::Task& task : *job->mutable_tasks()) FillApiTimes(&task);
}

void FillApiTimes(v1::Agent* agent) {
  SetTime(agent->last_seen_us(), agent, &v1::Agent::mutable_last_seen_time,
          &v1::Agent::clear_last_seen_time);
}

void FillApiTimes(v1::WatchEvent* event) {
  switch (event->kind_case()) {
    case v1::WatchEvent::kSnapshot:
      FillApiTimes(event->mutable_snapshot());
      break;
    case v1::WatchEvent::kTask:
      FillApiTimes(event->mutable_task());
      break;
    case v1::WatchEvent::kFinished:
      FillApiTimes(event->mutable_finished());
      break;
    default:
      break;
  }
}

}  // namespace musafarm
