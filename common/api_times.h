#pragma once

#include "musafarm/v1/farm.pb.h"
#include "musafarm/v1/user_service.pb.h"

// The user API carries each time twice until v2: as integer microseconds
// (created_us, ...; what the coordinator keeps and stores) and as
// google.protobuf.Timestamp / Duration (created_time, ...), which protobuf's
// JSON printer shows as RFC 3339 / "3600s". These fill the second from the
// first, for every message the user API returns, so the two never disagree; a
// zero integer leaves its Timestamp unset.
namespace musafarm {

void FillApiTimes(v1::Task* task);
void FillApiTimes(v1::Job* job);  // with its tasks
void FillApiTimes(v1::Agent* agent);
void FillApiTimes(v1::WatchEvent* event);

}  // namespace musafarm
